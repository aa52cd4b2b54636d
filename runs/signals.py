"""What runs tells the apps above it, which it does not import.

`run_ended(run=…)`: sent inside the transaction that ends a run (its row locked), so a
receiver's writes commit or roll back with the run's end; recordings stops the run's
recordings on it.
"""

from django.dispatch import Signal

run_ended = Signal()
