// Command dispatch is the t3fleet proxy: it sits behind an SSO forward-auth
// proxy, puts every user into their own t3 instance already paired, and
// proxies everything else. It is a drop-in for the seed's t3-dispatch: same
// routing table, same mint command, same log lines. With -demo it runs
// against fake instances and needs no root, no t3 and no SSO.
package main
