#!/usr/bin/env bash
# Writes every ```cpp block of a Markdown file as a program OUTDIR/readme_snippet_<line>.cpp, so the
# README's examples are compiled exactly as printed. A block with its own main() is kept as it is;
# any other block becomes its #include lines followed by main() { <the rest> }. #line directives
# point compiler messages at the README's own lines.
# Usage: tests/consumer/readme_snippets.sh README.md OUTDIR   (prints the number of programs)
set -euo pipefail

readme=$1
out=$2
[[ -f $readme ]] || { echo "readme_snippets: no such file: $readme" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/readme_snippet_*.cpp
name=$(basename "$readme")

awk -v out="$out" -v name="$name" '
  function flush(   i, file, has_main, head) {
    file = sprintf("%s/readme_snippet_%d.cpp", out, start)
    has_main = 0
    for (i = 1; i <= n; i++) if (lines[i] ~ /int main\(/) has_main = 1
    if (has_main) {
      printf("#line %d \"%s\"\n", start + 1, name) > file
      for (i = 1; i <= n; i++) print lines[i] > file
    } else {
      head = 0  # the leading #include and blank lines
      while (head < n && (lines[head + 1] ~ /^[ \t]*#include/ || lines[head + 1] ~ /^[ \t]*$/)) head++
      for (i = head + 1; i <= n; i++)
        if (lines[i] ~ /^[ \t]*#include/) {
          printf("readme_snippets: %s:%d: #include after code\n", name, start + i) > "/dev/stderr"
          exit 1
        }
      printf("#line %d \"%s\"\n", start + 1, name) > file
      for (i = 1; i <= head; i++) print lines[i] > file
      print "int main() {" > file
      printf("#line %d \"%s\"\n", start + head + 1, name) > file
      for (i = head + 1; i <= n; i++) print lines[i] > file
      print "}" > file
    }
    close(file)
    count++
  }
  in_block && /^[ \t]*```[ \t]*$/ { flush(); in_block = 0; next }
  in_block { lines[++n] = $0; next }
  /^[ \t]*```(cpp|c\+\+)[ \t]*$/ { in_block = 1; start = NR; n = 0; next }
  END {
    if (in_block) { printf("readme_snippets: %s:%d: unterminated code block\n", name, start) > "/dev/stderr"; exit 1 }
    if (count == 0) { printf("readme_snippets: %s has no C++ code blocks\n", name) > "/dev/stderr"; exit 1 }
    print count
  }
' "$readme"
