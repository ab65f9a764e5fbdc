// Package route decides where a message goes: an ordered table of rules over
// recipient, sender, identity and headers, where the first matching rule wins.
//
// The gateway asks Table.Accepts at RCPT time, so a recipient no rule can take
// is refused there and never needs a bounce; the parse stage asks Table.Match
// per recipient once the headers are known.
package route
