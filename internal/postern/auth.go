package postern

// Auth is the sender-authentication verdicts of a message, as the parse
// stage found them (package authcheck gives them; this is their stored
// form in parsed.json). Results are RFC 8601 names: none, pass, fail,
// softfail, neutral, policy, temperror, permerror. Mail from a trusted
// identity has none everywhere, with reason "trusted".
type Auth struct {
	SPF AuthSPF `json:"spf"`
	// DKIM has one entry per DKIM-Signature field, or one none entry.
	DKIM  []AuthDKIM `json:"dkim"`
	DMARC AuthDMARC  `json:"dmarc"`
	ARC   *AuthARC   `json:"arc,omitempty"`
}

// AuthSPF is the SPF verdict for the MAIL FROM domain (or HELO name).
type AuthSPF struct {
	Result string `json:"result"`
	Domain string `json:"domain"`
	Scope  string `json:"scope,omitempty"` // mailfrom or helo
	Reason string `json:"reason,omitempty"`
}

// AuthDKIM is the verdict for one DKIM signature.
type AuthDKIM struct {
	Result    string `json:"result"`
	Domain    string `json:"domain"`
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"`
	Reason    string `json:"reason,omitempty"`
}

// AuthDMARC is the DMARC verdict for the From domain.
type AuthDMARC struct {
	Result      string `json:"result"`
	Policy      string `json:"policy"`
	Domain      string `json:"domain"`
	AlignedSPF  bool   `json:"aligned_spf"`
	AlignedDKIM bool   `json:"aligned_dkim"`
	Reason      string `json:"reason,omitempty"`
}

// AuthARC reports the ARC sets a message carries, unverified.
type AuthARC struct {
	Result string       `json:"result"`
	Reason string       `json:"reason,omitempty"`
	Sets   []AuthARCSet `json:"sets"`
}

// AuthARCSet is one ARC instance's claimed results.
type AuthARCSet struct {
	Instance        int    `json:"instance"`
	AuthServID      string `json:"authserv_id"`
	Results         string `json:"results"`
	ChainValidation string `json:"cv,omitempty"`
}
