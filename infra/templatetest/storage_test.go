package templatetest

import (
	"reflect"
	"slices"
	"testing"
)

func TestBucket(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	if ids := tpl.OfType("AWS::S3::Bucket"); !slices.Equal(ids, []string{"Bucket"}) {
		t.Fatalf("buckets %v, want just Bucket", ids)
	}
	if got := tpl.Resources["Bucket"]; got.Condition != "" {
		t.Errorf("the bucket is conditional (%s)", got.Condition)
	}
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		p := r.Resources["Bucket"].Properties

		enc := dig(p, "BucketEncryption", "ServerSideEncryptionConfiguration", 0)
		algo := dig(enc, "ServerSideEncryptionByDefault", "SSEAlgorithm")
		keyID := dig(enc, "ServerSideEncryptionByDefault", "KMSMasterKeyID")
		_, keyCreated := r.Resources["BucketKey"]
		switch {
		case ps.values["BucketEncryption"] == "SSE-S3":
			if algo != "AES256" || keyID != nil || keyCreated {
				t.Errorf("%s: SSE-S3 gives %v key %v (key created: %v)", ps.name, algo, keyID, keyCreated)
			}
		case ps.values["KmsKeyArn"] != "":
			if algo != "aws:kms" || keyID != ps.values["KmsKeyArn"] || keyCreated {
				t.Errorf("%s: own key gives %v key %v (key created: %v)", ps.name, algo, keyID, keyCreated)
			}
		default:
			if algo != "aws:kms" || keyID != "${BucketKey.Arn}" || !keyCreated {
				t.Errorf("%s: default gives %v key %v (key created: %v)", ps.name, algo, keyID, keyCreated)
			}
			if dig(r.Resources["BucketKey"].Properties, "EnableKeyRotation") != true {
				t.Errorf("%s: the bucket key does not rotate", ps.name)
			}
		}
		if algo == "aws:kms" && dig(enc, "BucketKeyEnabled") != true {
			t.Errorf("%s: SSE-KMS without an S3 Bucket Key (one KMS call per object)", ps.name)
		}

		if got := dig(p, "PublicAccessBlockConfiguration"); !reflect.DeepEqual(got, map[string]any{
			"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
		}) {
			t.Errorf("%s: PublicAccessBlockConfiguration %v", ps.name, got)
		}
		if got := dig(p, "OwnershipControls", "Rules", 0, "ObjectOwnership"); got != "BucketOwnerEnforced" {
			t.Errorf("%s: ObjectOwnership %v", ps.name, got)
		}
		wantVersioning := "Suspended"
		if v := ps.values["BucketVersioning"]; v != "" {
			wantVersioning = v
		}
		if got := dig(p, "VersioningConfiguration", "Status"); got != wantVersioning {
			t.Errorf("%s: versioning %v, want %s", ps.name, got, wantVersioning)
		}

		var expiry, abort, noncurrent any
		for _, rule := range dig(p, "LifecycleConfiguration", "Rules").([]any) {
			if dig(rule, "Status") != "Enabled" {
				continue
			}
			if v := dig(rule, "ExpirationInDays"); v != nil {
				expiry = v
				// Messages expire, the configuration the processes read
				// at start (config/) must not.
				if dig(rule, "Prefix") != "m/" {
					t.Errorf("%s: objects expire under prefix %v, want m/ only (config/ must outlive RetentionDays)", ps.name, dig(rule, "Prefix"))
				}
			}
			if v := dig(rule, "AbortIncompleteMultipartUpload", "DaysAfterInitiation"); v != nil {
				abort = v
			}
			if v := dig(rule, "NoncurrentVersionExpiration", "NoncurrentDays"); v != nil {
				noncurrent = v
			}
		}
		wantDays := ps.values["RetentionDays"]
		if wantDays == "" {
			wantDays = scalarString(tpl.Parameters["RetentionDays"]["Default"])
		}
		if scalarString(expiry) != wantDays {
			t.Errorf("%s: objects expire after %v days, want the RetentionDays parameter (%s)", ps.name, expiry, wantDays)
		}
		if abort != 1 {
			t.Errorf("%s: incomplete multipart uploads abort after %v days, want 1", ps.name, abort)
		}
		if wantVersioning == "Enabled" && scalarString(noncurrent) != wantDays {
			t.Errorf("%s: noncurrent versions expire after %v, want %s days", ps.name, noncurrent, wantDays)
		}
		// Objects must outlive the retries that read them.
		if min := mustNum(t, "RetentionDays MinValue", tpl.Parameters["RetentionDays"]["MinValue"]); min*24*3600 <= maxRetryAgeSeconds {
			t.Errorf("RetentionDays may be %d days, not longer than the retry max age", min)
		}
	}
}

func TestBucketPolicyDeniesInsecureTransport(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	p := r.Resources["BucketPolicy"].Properties
	if p["Bucket"] != "${Bucket}" {
		t.Fatalf("BucketPolicy applies to %v", p["Bucket"])
	}
	var tlsOnly, modernTLS bool
	for _, st := range dig(p, "PolicyDocument", "Statement").([]any) {
		if dig(st, "Effect") != "Deny" || dig(st, "Principal") != "*" || !slices.Equal(strs(dig(st, "Action")), []string{"s3:*"}) {
			continue
		}
		res := strs(dig(st, "Resource"))
		if !slices.Contains(res, "${Bucket.Arn}") || !slices.Contains(res, "${Bucket.Arn}/*") {
			continue
		}
		if dig(st, "Condition", "Bool", "aws:SecureTransport") == "false" {
			tlsOnly = true
		}
		if dig(st, "Condition", "NumericLessThan", "s3:TlsVersion") == "1.2" {
			modernTLS = true
		}
	}
	if !tlsOnly {
		t.Error("no statement denies s3:* without TLS on the bucket and its objects")
	}
	if !modernTLS {
		t.Error("no statement denies TLS below 1.2")
	}
	// The archive is the message store: deleting the stack must not take
	// it, or the key that decrypts it, along.
	for _, id := range []string{"Bucket", "BucketKey"} {
		if got := tpl.Resources[id].DeletionPolicy; got != "Retain" {
			t.Errorf("%s DeletionPolicy %q, want Retain", id, got)
		}
	}
}
