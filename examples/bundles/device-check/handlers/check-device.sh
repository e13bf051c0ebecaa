#!/bin/sh
# An exec handler: the event arrives as JSON on stdin, the run's identity in AGENTRY_* variables.
# Whatever it prints on stdout as JSON is the run's result; "events" in it are published as follow-ups.
# Exit status 0 means success; anything on stderr is kept with the run.
event=$(cat)
device=$(printf '%s' "$event" | sed -n 's/.*"device_id" *: *"\([^"]*\)".*/\1/p')
[ -n "$device" ] || { echo "the event has no payload.device_id" >&2; exit 2; }
echo "checking $device for run $AGENTRY_RUN_ID (attempt $AGENTRY_ATTEMPT)" >&2
sleep 1
cat <<JSON
{"device": "$device", "picture": "ok",
 "events": [{"type": "device.checked", "payload": {"device_id": "$device", "picture": "ok"}}]}
JSON
