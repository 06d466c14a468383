#!/bin/sh
# SPDX-License-Identifier: MIT
# The tutorial's shell session (docs/tutorial.md), run as it is by the test
# suite: the programs built from tutorial_producer.c and tutorial_worker.c
# are ./producer and ./worker, and omniq is on PATH.
./producer                          # enqueued 01...  (two ids)
omniq list --func greet             # both PENDING: nothing has run them
./worker                            # ran 2 task(s)
omniq list --func greet --status success
id=$(omniq list --func greet --limit 1 | head -n 1 | cut -d' ' -f1)
omniq show "$id"                    # everything about the task
omniq result "$id"                  # "Hello, Ada!"
id=$(omniq enqueue -- echo hello from the shell)
omniq worker --burst                # runs the command task
omniq result "$id"                  # hello from the shell
