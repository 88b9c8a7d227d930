"""Twilio's side of phone calls: the voice webhook, status callbacks, the media stream."""
