// Openline dashboard audio worklets (loaded by dashboard.js into a 16 kHz AudioContext).
//  - "openline-mic": the microphone as 20 ms frames of 16-bit PCM, posted to the page.
//  - "openline-player": a jitter buffer that plays the agent's PCM gap-free; it waits for
//    PREBUFFER samples before it starts (and again after running dry), drops everything on
//    "clear" (barge-in), and reports how many samples were actually played.

const FRAME = 320; // 20 ms at 16 kHz

class MicProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.fill === FRAME) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME);
        this.fill = 0;
      }
    }
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.prebuffer = opts.prebuffer || 1600; // 100 ms
    this.ring = new Float32Array(16000 * 60); // up to a minute queued
    this.read = 0;
    this.write = 0;
    this.playing = false;
    this.played = 0;
    this.sinceReport = 0;
    this.port.onmessage = (event) => {
      const msg = event.data;
      if (msg === "clear") {
        this.read = this.write;
        this.playing = false;
        this.port.postMessage({ type: "cleared", played: this.played });
        return;
      }
      const pcm = new Int16Array(msg);
      for (let i = 0; i < pcm.length; i++) {
        this.ring[this.write % this.ring.length] = pcm[i] / 0x8000;
        this.write++;
      }
    };
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    const queued = this.write - this.read;
    if (!this.playing && queued > 0) {
      // Start once the buffer holds PREBUFFER, or when a short tail has waited ~160 ms.
      this.waited = (this.waited || 0) + 1;
      if (queued >= this.prebuffer || this.waited >= 20) {
        this.playing = true;
        this.waited = 0;
        this.port.postMessage({ type: "started", played: this.played });
      }
    }
    let n = 0;
    if (this.playing) {
      n = Math.min(out.length, queued);
      for (let i = 0; i < n; i++) out[i] = this.ring[(this.read + i) % this.ring.length];
      this.read += n;
      this.played += n;
      this.sinceReport += n;
      if (this.write === this.read) {
        this.playing = false; // ran dry: buffer again before playing on (no clicks)
        this.port.postMessage({ type: "drained", played: this.played });
      }
    }
    for (let i = n; i < out.length; i++) out[i] = 0;
    if (this.sinceReport >= 1600) {
      this.sinceReport = 0;
      this.port.postMessage({ type: "progress", played: this.played });
    }
    return true;
  }
}

registerProcessor("openline-mic", MicProcessor);
registerProcessor("openline-player", PlayerProcessor);
