#!/usr/bin/env bash
# Checks that libcni's layers import only downwards: each layer's code (not its
# unit tests, not its comments) names only `crate::` modules of lower layers or its
# own. The order, lowest first, is docs/design.md's. Prints each upward import and
# exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/../../libcni/src"
# Lowest first; a layer may use those before it and itself.
layers=(log hooks mac netlink netns spec skel host delegate attach)
status=0
for i in "${!layers[@]}"; do
    layer=${layers[$i]}
    allowed=" ${layers[*]:0:$((i + 1))} log_info log_warn log_debug "
    files=$( { ls "$layer".rs 2>/dev/null; find "$layer" -name '*.rs' 2>/dev/null; } || true)
    for file in $files; do
        # The code before the unit tests, comment lines left out.
        used=$(awk '/^#\[cfg\(test\)\]/ { exit } !/^[[:space:]]*\/\// { print }' "$file" |
            grep -oE 'crate::[a-z_]+' | sed 's/crate:://' | sort -u || true)
        for module in $used; do
            case "$allowed" in
                *" $module "*) ;;
                *) echo "layers: $file ($layer) imports crate::$module, a layer above it"; status=1 ;;
            esac
        done
    done
done
[ "$status" = 0 ] && echo "layers: every libcni import runs downwards (${layers[*]})"
exit "$status"
