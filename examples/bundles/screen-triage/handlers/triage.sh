#!/bin/sh
# A parent that delegates: on its first call it asks for the task reboot_device and waits for it ("await"); when the
# child has ended it is called again with "children" in its input, and reports the outcome as its result.
event=$(cat)
device=$(printf '%s' "$event" | sed -n 's/.*"device_id" *: *"\([^"]*\)".*/\1/p')
[ -n "$device" ] || { echo "the event has no payload.device_id" >&2; exit 2; }
case "$event" in
*'"children"'*)
  state=$(printf '%s' "$event" | sed -n 's/.*"state" *: *"\([a-z_]*\)".*/\1/p')
  echo "step $AGENTRY_STEP: the reboot of $device ended $state" >&2
  printf '{"device": "%s", "reboot": "%s"}\n' "$device" "$state"
  ;;
*)
  echo "step $AGENTRY_STEP: asking for a reboot of $device" >&2
  printf '{"delegate": [{"task": "reboot_device", "payload": {"device_id": "%s"}}], "await": {"on_failure": "continue"}}\n' "$device"
  ;;
esac
