// The realtime page: microphone -> server (PCM16 24 kHz) -> replies played back gaplessly.
// Plain JS, no build step.  `window.realtimeStats` exposes counters for tests and debugging.
"use strict";

const RATE = 24000;
const $ = (id) => document.getElementById(id);
const stats = (window.realtimeStats = {
  status: "disconnected", sentSamples: 0, receivedSamples: 0, playedSamples: 0,
  userTranscripts: [], assistantTranscripts: [], truncations: [], responses: 0, errors: [],
});

let ws = null;
let audio = null; // { context, stream, capture, player }
let wanted = false; // the user pressed Start: keep (re)connecting
let retries = 0;
let retryTimer = null;
let talking = false; // push-to-talk button held
let activeResponse = null; // id of the response being generated
// Playback bookkeeping: where each assistant item starts in the player's sample count.
let enqueued = 0;
let playing = null; // { itemId, start, samples }
const lines = new Map(); // item id -> DOM line

function setStatus(text, kind) {
  stats.status = text;
  $("status").textContent = text;
  $("status").className = kind || "";
}

function activity(text) { $("activity").textContent = text; }

function line(itemId, speaker) {
  let el = lines.get(itemId);
  if (!el) {
    el = document.createElement("div");
    el.className = `line ${speaker}`;
    el.dataset.item = itemId;
    $("log").appendChild(el);
    lines.set(itemId, el);
  }
  return el;
}

function logError(message) {
  stats.errors.push(message);
  const el = document.createElement("div");
  el.className = "line error";
  el.textContent = message;
  $("log").appendChild(el);
}

function send(event) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event));
}

function mode() { return $("mode").value; }

function sessionConfig() {
  const session = {
    type: "realtime",
    audio: {
      input: {
        turn_detection: mode() === "hands-free"
          ? { type: "server_vad", create_response: true, interrupt_response: true }
          : null,
      },
    },
  };
  const instructions = $("instructions").value.trim();
  if (instructions) session.instructions = instructions;
  return session;
}

// --- audio ---------------------------------------------------------------------------

async function startAudio() {
  const context = new AudioContext({ sampleRate: RATE });
  await context.audioWorklet.addModule("audio-worklet.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture", { processorOptions: { blockSamples: RATE / 10 } });
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(context.destination);
  capture.port.onmessage = (event) => onMicBlock(event.data);
  const player = new AudioWorkletNode(context, "player", { outputChannelCount: [1] });
  player.connect(context.destination);
  player.port.onmessage = (event) => {
    stats.playedSamples = event.data.played;
    if (event.data.idle && playing && stats.playedSamples >= enqueued) activity("");
  };
  await context.resume();
  audio = { context, stream, capture, player };
}

function stopAudio() {
  if (!audio) return;
  audio.stream.getTracks().forEach((track) => track.stop());
  audio.context.close();
  audio = null;
}

function onMicBlock(samples) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (mode() === "push-to-talk" && !talking) return;
  send({ type: "input_audio_buffer.append", audio: encodePcm16(samples) });
  stats.sentSamples += samples.length;
}

function encodePcm16(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function decodePcm16(base64) {
  const binary = atob(base64);
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
  const samples = new Float32Array(binary.length >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 32768;
  return samples;
}

function playDelta(itemId, base64) {
  const samples = decodePcm16(base64);
  if (!playing || playing.itemId !== itemId) {
    // A new reply starts where the queue ends now (or at once when it is empty).
    playing = { itemId, start: Math.max(enqueued, stats.playedSamples), samples: 0 };
    enqueued = playing.start;
  }
  playing.samples += samples.length;
  enqueued += samples.length;
  stats.receivedSamples += samples.length;
  if (audio) audio.player.port.postMessage({ type: "push", samples }, [samples.buffer]);
}

// Cancel the reply being generated and stop playing it (the Interrupt button).
function interrupt() {
  if (activeResponse) send({ type: "response.cancel" });
  stopPlayback();
}

// Stop playback now; tell the server what was heard of the reply that was playing.
function stopPlayback() {
  if (!playing) return;
  const heard = Math.max(0, Math.min(stats.playedSamples - playing.start, playing.samples));
  const stillPlaying = stats.playedSamples < playing.start + playing.samples;
  if (audio) audio.player.port.postMessage({ type: "clear" });
  if (stillPlaying) {
    send({ type: "conversation.item.truncate", item_id: playing.itemId, content_index: 0,
           audio_end_ms: Math.floor((heard * 1000) / RATE) });
    const el = lines.get(playing.itemId);
    if (el) el.classList.add("cancelled");
  }
  enqueued = stats.playedSamples;
  playing = null;
}

// --- connection ----------------------------------------------------------------------

function serverUrl() {
  const given = $("url").value.trim();
  if (given) return given;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/realtime?model=default`;
}

function connect() {
  clearTimeout(retryTimer);
  const token = $("token").value.trim();
  const protocols = ["realtime"];
  if (token) protocols.push(`openai-insecure-api-key.${token}`);
  setStatus(retries ? `reconnecting (attempt ${retries + 1})` : "connecting");
  ws = new WebSocket(serverUrl(), protocols);
  ws.onopen = () => {
    retries = 0;
    setStatus("connected", "connected");
    send({ type: "session.update", session: sessionConfig() });
  };
  ws.onmessage = (message) => {
    try {
      onEvent(JSON.parse(message.data));
    } catch (error) {
      logError(`bad event from the server: ${error}`);
    }
  };
  ws.onclose = (event) => {
    ws = null;
    activeResponse = null;
    if (!wanted) {
      setStatus("disconnected");
      return;
    }
    const delay = Math.min(10000, 1000 * 2 ** retries++);
    setStatus(`disconnected (${event.code}${event.reason ? ": " + event.reason : ""}); retrying in ${delay / 1000} s`,
      "error");
    retryTimer = setTimeout(connect, delay);
  };
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
    case "session.updated":
      activity(mode() === "hands-free" ? "listening" : "hold the button to talk");
      break;
    case "input_audio_buffer.speech_started":
      stopPlayback(); // the server cancels its reply itself (interrupt_response)
      activity("hearing you…");
      break;
    case "input_audio_buffer.speech_stopped":
      activity("thinking…");
      break;
    case "conversation.item.input_audio_transcription.completed":
      line(event.item_id, "user").textContent = event.transcript;
      stats.userTranscripts.push(event.transcript);
      break;
    case "conversation.item.added":
      if (event.item && event.item.role === "user" && event.item.content[0].type === "input_text") {
        line(event.item.id, "user").textContent = event.item.content[0].text;
      }
      break;
    case "conversation.item.truncated":
      stats.truncations.push(event.audio_end_ms);
      break;
    case "response.created":
      activeResponse = event.response.id;
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      line(event.item_id, "assistant").textContent += event.delta;
      activity("speaking");
      break;
    case "response.output_audio.delta":
      playDelta(event.item_id, event.delta);
      break;
    case "response.output_audio_transcript.done":
      stats.assistantTranscripts.push(event.transcript);
      break;
    case "response.done":
      activeResponse = null;
      stats.responses += 1;
      if (event.response.status !== "completed") {
        const el = event.response.output && event.response.output[0] && lines.get(event.response.output[0].id);
        if (el) el.classList.add("cancelled");
      }
      break;
    case "error":
      logError(`${event.error.code || event.error.type}: ${event.error.message}`);
      break;
    default:
      break;
  }
}

// --- controls ------------------------------------------------------------------------

async function start() {
  $("start").disabled = true;
  try {
    await startAudio();
  } catch (error) {
    $("start").disabled = false;
    setStatus(`microphone unavailable: ${error.message}`, "error");
    return;
  }
  wanted = true;
  $("stop").disabled = false;
  $("interrupt").disabled = false;
  $("talk").disabled = mode() !== "push-to-talk";
  connect();
}

function stop() {
  wanted = false;
  clearTimeout(retryTimer);
  if (ws) ws.close(1000, "stopped");
  stopAudio();
  playing = null;
  enqueued = 0;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("talk").disabled = true;
  $("interrupt").disabled = true;
}

function talkDown() {
  if (talking || mode() !== "push-to-talk" || !ws) return;
  talking = true;
  $("talk").classList.add("held");
  interrupt();
  send({ type: "input_audio_buffer.clear" });
  activity("hearing you…");
}

function talkUp() {
  if (!talking) return;
  talking = false;
  $("talk").classList.remove("held");
  send({ type: "input_audio_buffer.commit" });
  send({ type: "response.create" });
  activity("thinking…");
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
$("interrupt").addEventListener("click", interrupt);
$("talk").addEventListener("pointerdown", talkDown);
$("talk").addEventListener("pointerup", talkUp);
$("talk").addEventListener("pointerleave", talkUp);
document.addEventListener("keydown", (event) => {
  if (event.code === "Space" && event.target === document.body) { event.preventDefault(); talkDown(); }
});
document.addEventListener("keyup", (event) => {
  if (event.code === "Space" && event.target === document.body) { event.preventDefault(); talkUp(); }
});
$("mode").addEventListener("change", () => {
  $("talk").disabled = !ws || mode() !== "push-to-talk";
  send({ type: "session.update", session: sessionConfig() });
});
const params = new URLSearchParams(location.hash.slice(1));
if (params.get("token")) $("token").value = params.get("token");
if (params.get("mode")) $("mode").value = params.get("mode");
