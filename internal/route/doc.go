// Package route decides where a message goes: an ordered table of rules over
// recipient, sender, identity, headers and sender-authentication verdicts, where the first matching rule wins.
//
// The gateway asks Table.Accepts at RCPT time, so a recipient no rule can take
// is refused there and never needs a bounce. Where header rules exist
// (Table.HasHeaderRules), it asks Table.AcceptsMessage at the end of DATA with
// HeaderLookup of the header it received; the parse stage asks Table.Match per
// recipient with FieldLookup of the parsed headers, which gives the same values,
// and with the verdicts (SPF, DKIM, DMARC) it checked, which nothing before it
// knows: until then a rule with verdict conditions may match.
package route
