#!/usr/bin/env bash
# The appliance's main job. Not yet: the dataplane replay demo lands with the pipeline
# (dataplane/src/bin/dp-replay.rs), and the daemon after it.
echo "demo.sh: not yet — the dataplane demo arrives with the pipeline and dp-replay; see README.md (Status)."
