#!/bin/sh
# /usr/bin/strongbox of the Debian package: the package's own Node.js 24, whatever node the system
# has (or none). Found relative to this file, so an installation under another root works too.
here=$(dirname "$(readlink -f "$0")")
lib="$here/../lib/strongbox"
exec "$lib/node" --max-semi-space-size=1 "$lib/bin/strongbox.js" "$@"
