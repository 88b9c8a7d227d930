"""Phone calls through Twilio: inbound webhooks, outbound calls, call control, voicemail.

``service.TwilioService`` is the use case the HTTP edge (``api/twilio``) drives; the wire
codec is ``transports/twilio.py``; ``twiml`` builds the documents Twilio runs and ``rest``
talks to Twilio's (or a compatible) REST API.
"""
