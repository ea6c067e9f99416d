"""Test plugin ``flexplat-faults``: callback ``fault`` injects faults into a training run.

Installed in-process by tests/test_faults.py and as a distribution for ``flexplat`` subprocesses
(tests/test_faults.py, tests/test_distributed.py). Epochs are 1-based. ``pause_at`` sleeps before that
epoch when FLEXPLAT_TEST_PAUSE is set; a value other than "1" names a file created as the sleep starts.
"""

import os
import time

import flexplat


def _fault(context, options):
    import keras

    class Fault(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            flag = os.environ.get("FLEXPLAT_TEST_PAUSE")
            if epoch + 1 == options["pause_at"] and flag:
                if flag != "1":  # a file to say "sleeping now": the test's signal lands here, not inside TF
                    open(flag, "w").close()
                time.sleep(options["pause_seconds"])  # the test interrupts or kills a process meanwhile
            if epoch + 1 == options["lr_jump_at"]:
                self.model.optimizer.learning_rate.assign(1e38)  # an absurd learning rate from here on

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == options["raise_at"]:
                raise ValueError("this callback is broken on purpose")

    return Fault()


@flexplat.hookimpl
def register_callbacks(register):
    register(flexplat.CallbackSpec("fault", "inject faults (tests)", _fault, {
        "pause_at": flexplat.Option(0, "1-based epoch to sleep before (with FLEXPLAT_TEST_PAUSE set)"),
        "pause_seconds": flexplat.Option(600.0, "how long that sleep lasts"),
        "lr_jump_at": flexplat.Option(0, "1-based epoch from which the learning rate is absurd"),
        "raise_at": flexplat.Option(0, "1-based epoch whose end raises"),
    }))  # fmt: skip
