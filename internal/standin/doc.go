// Package standin starts the S3 and SQS stand-ins (versitygw and fauxqs) that
// tests run the AWS adapters against, on 127.0.0.1 only.
//
// Each test binary shares one process per kind (SQS, S3), started on first
// use and stopped by Main; tests that stop or restart a server to provoke
// faults start their own with StartSQS or StartS3. The binaries are
// installed by scripts/ci/install-sqs-standin.sh and install-s3-standin.sh
// into .ci/cache. A test that needs a missing one skips, or fails when
// POSTERN_REQUIRE_STANDINS=1 (as .ci/run sets) or CI=true, so a CI run
// never passes by skipping.
package standin
