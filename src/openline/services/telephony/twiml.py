"""The TwiML documents Openline answers Twilio with (built with the ``twilio`` library)."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import VoiceResponse

from openline.voice.tools import PhoneTransfer

#: ring time of a transfer's ``<Dial>`` before it counts as not answered
TRANSFER_RING_S = 30


def stream(url: str, parameters: Mapping[str, str], *, digits: str | None = None,
           pause_s: int = 0) -> str:
    """``<Connect><Stream>`` to the agent; ``<Parameter>``s carry what binds the stream to
    its call (a stream URL may carry no query string). ``digits`` are played first
    (keypad tones to the far end), ``pause_s`` waits before connecting."""
    if "?" in url:
        raise ValueError("Twilio drops query strings from stream URLs")
    response = VoiceResponse()
    if digits:
        response.play(digits=digits)
    if pause_s:
        response.pause(length=pause_s)
    connect = response.connect()
    media = connect.stream(url=url)
    for name, value in parameters.items():
        media.parameter(name=name, value=value)
    return str(response)


def say_and_hang_up(text: str) -> str:
    """A clear sentence for the caller, then the end of the call."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def reject() -> str:
    response = VoiceResponse()
    response.reject()
    return str(response)


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def forward(number: str, caller_id: str | None) -> str:
    """``inbound_rollout``: the calls the agent does not take go to this number."""
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id) if caller_id else response.dial()
    dial.number(number)
    return str(response)


def transfer(request: PhoneTransfer, caller_id: str | None, *, action: str,
             answered_callback: str) -> str:
    """A blind transfer: ``<Dial>`` the number (the caller hears ringback until it
    answers); ``action`` learns how the dial ended, ``answered_callback`` when it was
    answered; ``sendDigits`` are pressed once it answers."""
    response = VoiceResponse()
    options: dict[str, object] = {"answer_on_bridge": True, "action": action,
                                  "timeout": TRANSFER_RING_S}
    if caller_id:
        options["caller_id"] = caller_id
    dial = response.dial(**options)
    leg: dict[str, object] = {"status_callback": answered_callback,
                              "status_callback_event": "answered"}
    if request.dtmf:
        leg["send_digits"] = request.dtmf
    if request.detect_voicemail:
        leg["machine_detection"] = "DetectMessageEnd"
    dial.number(request.phone_number, **leg)
    return str(response)
