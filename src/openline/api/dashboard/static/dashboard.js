// Openline dashboard: the one script module (audio only; every page works without it).
//  - a conversation page: the transcript row being heard in the recording is highlighted;
//  - the Talk page: a conversation over /v1/sts/ws with a short-lived conversation token,
//    the microphone at 16 kHz through an AudioWorklet, the reply through a jitter buffer,
//    barge-in (local playback stops when the server hears the user), live transcript and
//    per-turn latency.

const RATE = 16000;

function highlightRecording() {
  const audio = document.getElementById("recording");
  if (!audio) return;
  const rows = [...document.querySelectorAll("#transcript tr.item[data-start]")];
  const update = () => {
    const ms = audio.currentTime * 1000;
    for (const row of rows) {
      const start = Number(row.dataset.start);
      const end = row.dataset.end ? Number(row.dataset.end) : start + 1000;
      row.classList.toggle("current", ms >= start && ms < end);
    }
  };
  audio.addEventListener("timeupdate", update);
  audio.addEventListener("seeked", update);
  for (const row of rows) {
    row.addEventListener("click", () => {
      audio.currentTime = Number(row.dataset.start) / 1000;
      audio.play();
    });
  }
}

function b64FromPcm(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function pcmFromB64(data) {
  const text = atob(data);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes.buffer;
}

class Talk {
  constructor(panel) {
    this.panel = panel;
    this.el = (id) => document.getElementById(id);
    this.state = { conversationId: null, playedSamples: 0, interruptions: 0, turns: 0,
                   assistantSpeaking: false, finishedAt: null, current: null, pending: null };
    this.el("talk-start").addEventListener("click", () => this.start().catch((e) => this.fail(e)));
    this.el("talk-stop").addEventListener("click", () => this.stop());
    window.openlineTalk = this.state; // read by people debugging and by the browser tests
  }

  status(text) { this.el("talk-status").textContent = text; }

  fail(error) {
    this.status(`error: ${error.message || error}`);
    this.stop();
  }

  line(role, text) {
    const li = document.createElement("li");
    li.className = role;
    const who = document.createElement("strong");
    who.textContent = role === "user" ? "You" : "Agent";
    const span = document.createElement("span");
    span.textContent = text;
    li.append(who, " ", span);
    this.el("talk-transcript").append(li);
    return span;
  }

  async start() {
    this.el("talk-start").disabled = true;
    this.status("connecting…");
    const answer = await fetch(this.panel.dataset.tokenUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": this.panel.dataset.csrf },
    });
    if (!answer.ok) throw new Error(`token refused (${answer.status})`);
    const grant = await answer.json();
    this.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await this.ctx.audioWorklet.addModule(this.panel.dataset.worklet);
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    this.player = new AudioWorkletNode(this.ctx, "openline-player",
      { numberOfInputs: 0, outputChannelCount: [1], processorOptions: { prebuffer: 1600 } });
    this.player.connect(this.ctx.destination);
    this.player.port.onmessage = (event) => this.onPlayer(event.data);
    this.mic = new AudioWorkletNode(this.ctx, "openline-mic", { numberOfOutputs: 0 });
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.source.connect(this.mic);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${grant.socket}?conversation_token=` +
      encodeURIComponent(grant.conversation_token);
    this.ws = new WebSocket(url);
    this.ws.onopen = () => this.ws.send(JSON.stringify({
      type: "config", agent: grant.agent, project: grant.project,
      input_format: "pcm_16000", output_format: "pcm_16000",
    }));
    this.ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    this.ws.onclose = (event) => this.onClose(event);
    this.el("talk-stop").disabled = false;
  }

  sendMic(buffer) {
    if (this.ready && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "audio_chunk", audio: b64FromPcm(buffer) }));
    }
  }

  onPlayer(msg) {
    this.state.playedSamples = msg.played;
    this.el("talk-played").textContent = String(Math.round(msg.played / RATE * 1000));
    if (msg.type === "started" && this.state.pending) {
      const row = this.state.pending;
      this.state.pending = null;
      if (this.state.finishedAt !== null) {
        row.cells[5].textContent = `${Math.round(performance.now() - this.state.finishedAt)} ms`;
      }
    }
  }

  latencyRow(timings) {
    this.state.turns += 1;
    const row = this.el("talk-latency").tBodies[0].insertRow();
    const values = [String(this.state.turns)];
    for (const key of ["endpointing_ms", "stt_ms", "llm_first_token_ms", "tts_first_audio_ms"]) {
      values.push(timings[key] === undefined ? "" : `${Math.round(timings[key])} ms`);
    }
    values.push("");
    for (const value of values) row.insertCell().textContent = value;
    this.state.pending = row;
  }

  onMessage(msg) {
    switch (msg.type) {
      case "conversation_created":
        this.state.conversationId = msg.conversation_id;
        break;
      case "ready_to_start_conversation":
        this.ready = true;
        this.mic.port.onmessage = (event) => this.sendMic(event.data);
        this.status("listening");
        break;
      case "user_started_speaking":
        if (this.state.assistantSpeaking) {
          // Barge-in: stop what is still queued here at once; the server keeps only the
          // words that were played (interrupted_response says which).
          this.player.port.postMessage("clear");
          this.state.muted = true; // chunks still in flight belong to the cut reply
          this.state.interruptions += 1;
          this.el("talk-interruptions").textContent = String(this.state.interruptions);
        }
        this.status("hearing you");
        break;
      case "user_finished_speaking":
        this.state.finishedAt = performance.now();
        this.status("thinking");
        break;
      case "input_text":
        this.line("user", msg.text);
        break;
      case "assistant_started_speaking":
        this.state.assistantSpeaking = true;
        this.state.muted = false;
        this.state.current = this.line("assistant", "");
        this.status("speaking");
        break;
      case "audio_chunk":
        if (this.state.muted) break;
        if (msg.timings) this.latencyRow(msg.timings);
        if (this.state.current && msg.text &&
            !this.state.current.textContent.endsWith(msg.text)) {
          this.state.current.textContent = `${this.state.current.textContent} ${msg.text}`.trim();
        }
        this.player.port.postMessage(pcmFromB64(msg.audio));
        break;
      case "interrupted_response":
        if (this.state.current) {
          this.state.current.textContent = `${msg.text} …`;
          this.state.current.parentElement.classList.add("interrupted");
        }
        break;
      case "assistant_finished_speaking":
        this.state.assistantSpeaking = false;
        this.status("listening");
        break;
      case "error":
        this.status(`error: ${msg.error && msg.error.message}`);
        break;
      default:
        break;
    }
  }

  onClose(event) {
    this.status(`ended (${event.code})`);
    this.state.closed = event.code;
    this.release();
    if (this.state.conversationId) {
      const link = this.el("talk-conversation");
      link.href = this.panel.dataset.conversationUrl.replace(/\/(\?|$)/,
        `/${this.state.conversationId}$1`);
      link.hidden = false;
    }
  }

  release() {
    this.ready = false;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.source) this.source.disconnect();
    this.el("talk-start").disabled = false;
    this.el("talk-stop").disabled = true;
  }

  stop() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "user");
    else this.release();
  }
}

highlightRecording();
const panel = document.getElementById("talk-panel");
if (panel) new Talk(panel);
