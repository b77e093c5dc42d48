"""Live event mode: wristbands stream in while the set plays (issue 11).

The gateway (:mod:`pipeline.live.gateway`) takes 30 ms frames from wristbands over a WebRTC
DataChannel or a WebSocket (framing in :mod:`pipeline.live.framing`), runs the capture gates and
voice activity where the audio arrives, and publishes one JetStream message per wristband and
window (wire format in :mod:`pipeline.live.wire`). Speech and non-consenting audio therefore
never reach the broker. Workers commit those windows to the store.
"""
