// Package sqsqueue is the Amazon SQS driver of queue.Queue, for the AWS
// deployment; fsqueue is its local twin and both pass queuetest.
//
// It talks to SQS through the few client methods in API (an *sqs.Client
// satisfies it; NewClient builds one), over the SDK's default JSON protocol.
//
// # Bodies
//
// SQS message bodies must be Unicode text without most control characters,
// while the port carries arbitrary bytes. A body that is UTF-8 made of #x9,
// #xA, #xD, #x20-#xD7FF and #xE000-#xFFFD, as Postern's JSON jobs are, is
// sent as it is and stays readable in the console and in dead-letter queues;
// any other body is sent base64-encoded with the message attribute
// BodyEncodingAttribute set to "base64". (SQS documents #x10000-#x10FFFF as
// allowed too, but not every implementation takes them, so those go as
// base64.) Receive decodes by that attribute, and DecodeBody does the same
// for bodies that arrive by other paths, such as Lambda's SQS events, whose
// records carry the message attributes.
//
// # Whole seconds and AWS limits
//
// SQS counts in whole seconds, so durations are rounded up: a delay, wait or
// visibility of 1.2s becomes 2s, never less than asked. Beyond SQS's limits
// they are clamped: a delay to 15 minutes (a job that must wait longer has
// to carry its due time, and its consumer must defer it again with
// ChangeVisibility when it arrives early), a long-poll wait to 20 seconds
// (Receive may return empty sooner than a longer wait, which the port
// allows), a visibility to 12 hours, and max to 10 messages. SQS also caps a
// message's total visibility at 12 hours from its first receive.
//
// A zero DelaySeconds or WaitTimeSeconds is not sent at all (the SDK leaves
// out zero values), so a queue configured with its own DelaySeconds or
// ReceiveMessageWaitTimeSeconds applies those instead: leave both at their
// default 0 on Postern's queues.
//
// # Dead letters
//
// Moving a message to its dead-letter queue after N receives is the queue's
// RedrivePolicy (maxReceiveCount N), configured on SQS, not here.
package sqsqueue
