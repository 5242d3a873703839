#!/usr/bin/env bash
# Compares `rulefilter validate` (JSON and text) of two builds on every document in a directory: prints each
# file whose output differs, and the count. See mutate.py.
#   tests/sameness/compare.sh REFERENCE_BINARY NEW_BINARY DIR
set -u
reference=$1 new=$2 dir=$3
differ=0 total=0
for file in "$dir"/*; do
    total=$((total + 1))
    for format in json text; do
        a=$("$reference" validate --format "$format" "$file" 2>&1; echo "exit $?")
        b=$("$new" validate --format "$format" "$file" 2>&1; echo "exit $?")
        if [ "$a" != "$b" ]; then
            differ=$((differ + 1))
            echo "DIFFERS ($format): $file"
            diff <(echo "$a") <(echo "$b") | head -10
        fi
    done
    if [ $((total % 250)) -eq 0 ]; then echo "... $total documents compared" >&2; fi
done
echo "$total documents, $differ outputs differ"
[ "$differ" -eq 0 ]
