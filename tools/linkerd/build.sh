#!/usr/bin/env bash
# Builds a runnable Linkerd 1.7.5 into a cache outside the repository:
#   $LINKERD_HOME/lib/*.jar   (third-party jars + linkerd-1.7.5-meshalert.jar)
# Run it as `make deps-linkerd`. Idempotent: a stamp (hash of this script, pom.xml and the
# upstream commit) makes a warm run a no-op that takes well under a second.
#
# Why a build and not a download: Linkerd's io.buoyant artifacts are not on the registries
# this project may use. The sources come from a fetched snapshot of linkerd/linkerd (a bare
# git directory, $LINKERD_SRC_GIT), never from this repository: the 1.7.5 release commit is
# extracted into the cache and compiled against the jars pom.xml resolves from Maven Central.
# Without a built jar and without the snapshot, this says so in one line and exits 0; the
# tests that need a real Linkerd then skip with that reason. See README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${LINKERD_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/meshalert/linkerd-1.7.5}"
lib="$home/lib"
stamp_file="$lib/.meshalert-stamp"
commit=ea82499d3  # "Release notes for Linkerd 1.7.5 (#2454)"
modules=(
  finagle/buoyant finagle/h2 grpc/gen grpc/runtime config admin admin/names namer/core
  namer/fs router/core router/base-http router/http telemetry/core
  telemetry/admin-metrics-export telemetry/statsd linkerd/core linkerd/admin linkerd/main
  linkerd/protocol/http istio-proto istio k8s interpreter/per-host interpreter/subnet
  interpreter/k8s
)

stamp="$(
  cd "$here"
  { sha256sum build.sh pom.xml; echo "$commit"; } | sha256sum | cut -c1-32
)"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  exit 0
fi

src_git="${LINKERD_SRC_GIT:-}"
if [[ -z "$src_git" ]]; then
  for candidate in /work/.mirror/linkerd+linkerd/repo /work/.mirror/linkerd+linkerd; do
    if git --git-dir="$candidate" cat-file -e "$commit^{commit}" 2>/dev/null; then
      src_git="$candidate"
      break
    fi
  done
fi
if [[ -z "$src_git" ]] || ! git --git-dir="$src_git" cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "deps-linkerd: skipped: Linkerd 1.7.5 is in no registry reachable here and no snapshot of" \
    "github.com/linkerd/linkerd (commit $commit) was found; fetch one and set LINKERD_SRC_GIT" \
    "to its git directory to build it (tests needing a real Linkerd skip meanwhile)" >&2
  exit 0
fi

for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (Java 17 and Maven)" >&2; exit 1; }
done

started=$SECONDS
work="$home/build"
rm -rf "$work" "$lib.new"
mkdir -p "$work" "$lib.new"
log() { echo "linkerd build [$((SECONDS - started))s]: $*" >&2; }

log "resolving jars from Maven Central"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib.new"
mvn -q -B -f "$here/pom.xml" -Pbuild-tools dependency:copy-dependencies \
  -DoutputDirectory="$work/tools" -DincludeArtifactIds=scala-compiler,protoc,scala-library,scala-reflect

scalac=(java -Xss8m -Xmx1200m -cp "$work/tools/*" scala.tools.nsc.Main -nowarn)
classpath="$(find "$lib.new" -name '*.jar' | sort | tr '\n' ':')"
src="$work/src"
log "extracting $commit from $src_git"
mkdir -p "$src"
paths=()
for module in "${modules[@]}"; do paths+=("$module/src/main"); done
git --git-dir="$src_git" archive "$commit" "${paths[@]}" | tar -x -C "$src"

# 1. Linkerd's own protoc plugin (grpc/gen), then the generated Scala for usage.proto
#    (linkerd/core) and istio-proto (linkerd/protocol/http depends on it).
log "compiling the protoc plugin"
mkdir -p "$work/gen-classes" "$work/gen-src" "$work/bin"
"${scalac[@]}" -classpath "$classpath" -d "$work/gen-classes" \
  $(find "$src/grpc/gen/src/main" -name '*.scala')
cat >"$work/bin/protoc-gen-io.buoyant.grpc" <<EOF
#!/bin/sh
exec java -cp "$work/gen-classes:$classpath" io.buoyant.grpc.gen.Main "\$@"
EOF
chmod +x "$work/bin/protoc-gen-io.buoyant.grpc"
protoc="$(find "$work/tools" -name 'protoc-*.exe')"
chmod +x "$protoc"
for module in linkerd/core istio-proto; do
  out="$work/gen-src/${module//\//-}"
  mkdir -p "$out"
  (cd "$src/$module/src/main/protobuf" &&
    PATH="$work/bin:$PATH" "$protoc" -I. --io.buoyant.grpc_out=plugins=grpc:"$out" \
      $(find . -name '*.proto' | sed 's|^\./||'))
done

# 2. Everything but linkerd/main with -release 8, as upstream targets Java 8: on the Java 17
#    API, ByteBuffer.position(Int) makes grpc/runtime's `bb.position + n` ambiguous.
#    linkerd/main alone without it: it uses sun.misc.Signal, which -release 8 hides.
log "compiling Linkerd (several minutes on a busy machine)"
mkdir -p "$work/classes"
{
  find "$src" -path "$src/grpc/gen" -prune -o -path "$src/linkerd/main" -prune -o -name '*.scala' -print
  find "$work/gen-src" -name '*.scala'
} >"$work/sources.txt"
"${scalac[@]}" -release 8 -classpath "$classpath" -d "$work/classes" "@$work/sources.txt"
"${scalac[@]}" -classpath "$work/classes:$classpath" -d "$work/classes" \
  $(find "$src/linkerd/main/src/main" -name '*.scala')

# 3. Resources. Plugins are found through META-INF/services, which several modules share:
#    concatenate those, copy the rest. build.properties is what sbt would generate.
log "packaging"
res="$work/resources"
mkdir -p "$res/META-INF/services" "$res/io/buoyant/linkerd"
while IFS= read -r -d '' dir; do
  (cd "$dir" && find . -type f ! -path './META-INF/services/*' -print0 |
    xargs -0 -r cp --parents -t "$res")
  if [[ -d "$dir/META-INF/services" ]]; then
    for f in "$dir"/META-INF/services/*; do
      cat "$f" >>"$res/META-INF/services/$(basename "$f")"
      echo >>"$res/META-INF/services/$(basename "$f")"
    done
  fi
done < <(find "$src" -type d -path '*/src/main/resources' -print0 | sort -z)
printf 'name=main\nversion=1.7.5\nbuild_revision=ea82499d3\nbuild_name=meshalert-source-build\n' \
  >"$res/io/buoyant/linkerd/build.properties"
jar cf "$lib.new/linkerd-1.7.5-meshalert.jar" -C "$work/classes" . -C "$res" .

echo "$stamp" >"$lib.new/.meshalert-stamp"
rm -rf "$lib"
mv "$lib.new" "$lib"
rm -rf "$work"
log "done: $lib"
