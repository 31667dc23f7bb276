# SPDX-License-Identifier: Apache-2.0
"""The move engine that evacuation and drain share: a window of moves in
flight, progress read from Nova's migration records, verification, totals."""
