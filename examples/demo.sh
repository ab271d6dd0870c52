#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded teacher, offline, resumable.
#
#   corpus (WordNet glosses + examples) -> encode -> train (time-boxed) -> probe
#   -> STS-B + SST-2 (when GLUE_DIR is set) -> report.html + five-line summary
#
# Knobs (environment variables):
#   DEMO_ROWS=30000      corpus lines sampled (fixed seed); `all` takes every line
#   TRAIN_MINUTES=4      training time box
#   CORPUS=FILE          use this corpus (one text per line, .txt or .txt.gz) instead of WordNet
#   GLUE_DIR=DIR         GLUE TSVs (STS-B/dev.tsv, SST-2/): adds zero-shot STS-B and SST-2
#                        [default: ../shared/data/glue when that folder exists; GLUE_DIR=none
#                        skips GLUE]
#   SST2_EXAMPLES=4000   SST-2 training examples for the fine-tuning check
#   RUN=runs/demo        where everything goes; re-running resumes from what is there
# The defaults finish in about 5-6 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PIPELINE="${PIPELINE:-.venv/bin/pipeline}"
RUN="${RUN:-runs/demo}"
DEMO_ROWS="${DEMO_ROWS:-30000}"
TRAIN_MINUTES="${TRAIN_MINUTES:-4}"
SST2_EXAMPLES="${SST2_EXAMPLES:-4000}"
VAL_FRACTION="${VAL_FRACTION:-0.05}"
WORDNET_DIR="${WORDNET_DIR:-/usr/share/wordnet}"
START=$SECONDS
if [[ -z "${GLUE_DIR:-}" && -d ../shared/data/glue ]]; then
  GLUE_DIR=../shared/data/glue
elif [[ "${GLUE_DIR:-}" == "none" ]]; then
  GLUE_DIR=""
fi

step() { printf '\n== [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# a .gz corpus is decompressed on the fly (shuf and wc would read its compressed bytes)
text_of() { if [[ "$1" == *.gz ]]; then gzip -cd "$1"; else cat "$1"; fi; }
has_result() { [[ -f "$1/results.json" ]] && grep -q "\"$2\"" "$1/results.json"; }

mkdir -p "$RUN"

# 1. corpus ---------------------------------------------------------------------------------
if [[ -n "${CORPUS:-}" ]]; then
  SOURCE="$CORPUS"
  [[ -f "$SOURCE" ]] || { echo "CORPUS=$SOURCE: no such file" >&2; exit 1; }
else
  SOURCE="$RUN/wordnet.txt"
  if [[ ! -f "$SOURCE" ]]; then
    if [[ ! -f "$WORDNET_DIR/data.noun" ]]; then
      step "installing WordNet 3.0 (Debian package wordnet-base)"
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y -q wordnet-base >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null && apt-get install -y -q wordnet-base >/dev/null; }
      else
        echo "WordNet is missing: run 'sudo apt-get install wordnet-base'," \
             "or pass CORPUS=your_corpus.txt" >&2
        exit 1
      fi
    fi
    step "extracting WordNet glosses and examples"
    "$PIPELINE" data wordnet --wordnet-dir "$WORDNET_DIR" --out "$SOURCE"
  fi
fi

CORPUS_FILE="$RUN/corpus-$DEMO_ROWS.txt"
if [[ "$DEMO_ROWS" == "all" ]]; then
  CORPUS_FILE="$SOURCE"
elif [[ ! -f "$CORPUS_FILE" ]]; then
  step "sampling $DEMO_ROWS lines of $SOURCE (fixed seed; DEMO_ROWS=all takes everything)"
  if [[ "$SOURCE" == *.gz ]]; then
    gzip -cd "$SOURCE" | shuf -n "$DEMO_ROWS" --random-source=<(yes) > "$CORPUS_FILE.tmp"
  else
    shuf -n "$DEMO_ROWS" --random-source=<(yes) "$SOURCE" > "$CORPUS_FILE.tmp"
  fi
  mv "$CORPUS_FILE.tmp" "$CORPUS_FILE"
fi

# 2. stage 1: teacher vectors (skips complete shards) ----------------------------------------
step "stage 1: encoding $(text_of "$CORPUS_FILE" | wc -l) texts with the embedded teacher"
SHARDS="$RUN/shards-$DEMO_ROWS"
"$PIPELINE" encode "$CORPUS_FILE" --out "$SHARDS" --shard-size 5000

# 3. stage 2: the student (resumes from its last checkpoint) ---------------------------------
STS_DEV=""
if [[ -n "${GLUE_DIR:-}" && -f "$GLUE_DIR/STS-B/dev.tsv" ]]; then
  STS_DEV="$GLUE_DIR/STS-B/dev.tsv"
fi
step "stage 2: training the student for up to $TRAIN_MINUTES minutes"
STUDENT="$RUN/student-$DEMO_ROWS"
"$PIPELINE" train --targets "$SHARDS" --out "$STUDENT" --time-budget "$TRAIN_MINUTES" \
  --epochs 100 --val-fraction "$VAL_FRACTION" --val-every 200 --checkpoint-every 200 \
  ${STS_DEV:+--sts-dev "$STS_DEV"}

# 4. stage 3: probes and evaluations (each skipped when its results exist) --------------------
EVAL="$RUN/eval-$DEMO_ROWS"
if ! has_result "$EVAL" knn-probe; then
  step "stage 3: kNN probe of the student and the teacher on the held-out rows"
  "$PIPELINE" eval probe --model "$STUDENT" --model teacher --targets "$SHARDS" \
    --validation-fraction "$VAL_FRACTION" --out "$EVAL"
fi
if [[ -n "$STS_DEV" ]] && ! has_result "$EVAL" "sts:STS-B-dev"; then
  step "stage 3: zero-shot STS-B dev, student and teacher"
  "$PIPELINE" eval sts --model "$STUDENT" --model teacher --data "$STS_DEV" --out "$EVAL"
fi
if [[ -n "${GLUE_DIR:-}" && -d "$GLUE_DIR/SST-2" ]]; then
  step "stage 3: SST-2 fine-tuning of the student ($SST2_EXAMPLES training examples)"
  "$PIPELINE" eval glue --model "$STUDENT" --tasks sst2 --data-dir "$GLUE_DIR" --out "$EVAL" \
    --max-train-examples "$SST2_EXAMPLES" --epochs 1 --no-predict-test
elif [[ -z "${GLUE_DIR:-}" ]]; then
  step "GLUE_DIR not set: skipping STS-B and SST-2 (e.g. GLUE_DIR=../shared/data/glue make demo)"
fi

# 5. report -----------------------------------------------------------------------------------
step "report"
"$PIPELINE" report "$SHARDS" "$STUDENT" "$EVAL" --out "$RUN/report.html"
printf '\ndemo finished in %d min %d s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60))
