#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's CLI quick start, run as it is by the test suite.
id=$(omniq enqueue -- echo hello)   # prints the task's id
omniq worker --burst                # runs what is due, then exits
omniq result "$id"                  # prints: hello
