package t3fleet

import (
	"strconv"
	"unicode/utf8"
)

// Printable renders s for an operator's terminal: unchanged when it is
// plain text, else quoted and escaped as strconv.Quote does.
//
// It is the one rule for every string a user controls that the updater,
// run as root, prints: the names of the files in a user's backup
// directory, the labels and versions in the metadata planted beside them,
// the version their instance reports, the names of their processes in an
// idle verdict, the error texts that quote any of these. Printed as is, a
// newline fakes a line of its own (an "ok" row, a newest prebump backup),
// an escape sequence drives the operator's terminal, a tab moves a
// table's columns, invalid UTF-8 (0xff is text/tabwriter's escape byte)
// garbles them, and a name of blanks passes for none. Quoting only such
// strings leaves every ordinary one as it was, so no line an alert or the
// runbook matches changes for them; a quoted one still reads as itself.
// Apply it where such a string enters a printed line, once: a string
// already rendered is plain text, and rendering it again escapes twice.
//
// Plain text is valid UTF-8 of printable runes (strconv.IsPrint: letters,
// marks, numbers, punctuation, symbols and the ASCII space) that neither
// starts nor ends with a space nor starts with a double quote, so that a
// plain string never reads as a quoted one. The empty string is returned
// as is: callers print a placeholder of their own for it.
//
// Lines written through log/slog's text and JSON handlers need none of
// this: they quote (text) or escape (JSON) such values themselves, the
// message included, and Printable before them would escape twice.
func Printable(s string) string {
	if s == "" {
		return s
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' || s[0] == '"' || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
