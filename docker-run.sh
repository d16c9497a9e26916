#!/bin/sh
# Container entry point. On first start it writes an example config to
# /data and exits; once the config is edited, it writes the registration and
# exits again; after that it runs the bridge.
set -e
cd /data
if [ ! -f config.yaml ]; then
  cp /opt/mxpp/example-config.yaml config.yaml
  echo "Wrote /data/config.yaml: edit it (set appservice.hostname to 0.0.0.0), then start the container again."
  exit 0
fi
if [ ! -f registration.yaml ]; then
  mxpp -g -c config.yaml -r registration.yaml
  echo "Add /data/registration.yaml to your homeserver, then start the container again."
  exit 0
fi
exec mxpp -c config.yaml
