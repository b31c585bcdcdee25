# Sourced by the pipeline benchmarks: builds the release CLI and writes the
# JSON-lines input of $events sensor readings once, into $dir. Sets $sluice
# and $input.
mkdir -p "$dir"
cargo build --release --quiet -p sluice-cli
sluice=target/release/sluice
input="$dir/input-$events.jsonl"
if [ ! -s "$input" ]; then
  echo "writing $input ..."
  "$sluice" run benches/pipelines/make_input.toml \
    --set source.events="$events" --set "sink.source.path=$(pwd)/$input" 2>/dev/null
fi
