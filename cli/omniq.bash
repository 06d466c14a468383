# SPDX-License-Identifier: MIT
# bash completion for omniq(1). Installed as
# share/bash-completion/completions/omniq; tests/cli/test_cli_usage.c checks
# that it offers every subcommand and every option `omniq CMD --help` shows.

_omniq() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion || return
  else
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi

  local commands='enqueue worker result show list cancel retry delete purge pause resume stats serve'
  local store='--backend --db --base-dir --help '

  # Values of options that take one.
  case $prev in
    --backend) COMPREPLY=($(compgen -W 'sqlite file' -- "$cur")); return ;;
    --isolation) COMPREPLY=($(compgen -W 'thread process' -- "$cur")); return ;;
    --status) COMPREPLY=($(compgen -W 'pending running success failed cancelled' -- "$cur")); return ;;
    --base-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --db | --load) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --delay | --at | --interval | --retries | --timeout | --queue | --priority | --shell | \
      --func | --args | --kwargs | -c | --concurrency | -q | --queues | --poll | \
      --shutdown-timeout | --kill-after | -e | --env | -w | --wait | --older-than | \
      --cron | --unique | --unique-for | --max-tasks-per-child | --memory-limit | \
      --cpu-limit | --files-limit | --limit | --cursor | --every | --listen | --sample | \
      --worker)
      return ;;
  esac

  # The command: the first word that is not an option or an option's value.
  local i cmd=''
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --backend | --db | --base-dir) ((i++)) ;;
      -*) ;;
      *) cmd=${words[i]}; break ;;
    esac
  done

  local opts
  case $cmd in
    '') opts="$store --version"
        [[ $cur == -* ]] || { COMPREPLY=($(compgen -W "$commands" -- "$cur")); return; } ;;
    enqueue)
      # After "--" the words are the command's own.
      for ((i = 1; i < cword; i++)); do
        [[ ${words[i]} == -- ]] && { COMPREPLY=($(compgen -c -- "$cur")); return; }
      done
      opts="--delay --at --interval --retries --timeout --queue --priority --shell --func --args --kwargs --cron --unique --unique-for $store" ;;
    worker)
      opts="--concurrency --queues --isolation --load --poll --burst --shutdown-timeout --kill-after --env --max-tasks-per-child --memory-limit --cpu-limit --files-limit $store" ;;
    result) opts="--wait --json $store" ;;
    show) opts="--json $store" ;;
    cancel) opts="$store" ;;
    list) opts="--status --queue --func --limit --cursor --json $store" ;;
    retry) opts="--failed --queue $store" ;;
    delete | pause | resume) opts="$store" ;;
    purge) opts="--older-than --expired --json $store" ;;
    stats) opts="--watch --every --json $store" ;;
    serve) opts="--listen --read-only --show-args --sample --worker --queues $store" ;;
    *) return ;;
  esac
  [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _omniq omniq
