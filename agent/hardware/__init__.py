"""The hardware around the readers, and what all of it tells the daemon.

:mod:`~agent.hardware.events` holds the plain values readers and sensors emit,
:mod:`~agent.hardware.debounce` the pure contact debouncer,
:mod:`~agent.hardware.gpio` the one choice of a gpiozero pin factory,
:mod:`~agent.hardware.sensors` door and tamper inputs and
:mod:`~agent.hardware.feedback` the LEDs and buzzer, both on an injected pin
factory. Badge readers are :mod:`agent.readers`. Nothing is imported here, so
importing a pure module of this package loads no GPIO library.
"""
