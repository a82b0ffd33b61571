// AudioWorklet processors for the realtime page (runs in the audio thread).
//
// "capture": posts the microphone as Float32Array blocks of `blockSamples`
//   (100 ms at the context's 24 kHz rate) to the page.
// "player": plays queued Float32Array chunks back to back (gapless) and
//   reports how many samples have really been played, so that the page can
//   truncate an interrupted reply at what the user heard.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.blockSamples = (options.processorOptions && options.processorOptions.blockSamples) || 2400;
    this.block = new Float32Array(this.blockSamples);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      const samples = input[0];
      let offset = 0;
      while (offset < samples.length) {
        const take = Math.min(samples.length - offset, this.blockSamples - this.filled);
        this.block.set(samples.subarray(offset, offset + take), this.filled);
        this.filled += take;
        offset += take;
        if (this.filled === this.blockSamples) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(this.blockSamples);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunks = [];
    this.offset = 0; // read position in chunks[0]
    this.played = 0; // samples of queued audio played so far (silence not counted)
    this.reported = 0;
    this.port.onmessage = (event) => {
      const message = event.data;
      if (message.type === "push") {
        this.chunks.push(message.samples);
      } else if (message.type === "clear") {
        this.chunks = [];
        this.offset = 0;
        this.port.postMessage({ type: "played", played: this.played, cleared: true });
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let written = 0;
    while (written < out.length && this.chunks.length > 0) {
      const chunk = this.chunks[0];
      const take = Math.min(out.length - written, chunk.length - this.offset);
      out.set(chunk.subarray(this.offset, this.offset + take), written);
      written += take;
      this.offset += take;
      if (this.offset >= chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    out.fill(0, written);
    this.played += written;
    const idle = this.chunks.length === 0;
    // Report about every 50 ms while playing, and once when the queue runs dry.
    if (this.played - this.reported >= 1200 || (idle && this.played !== this.reported)) {
      this.reported = this.played;
      this.port.postMessage({ type: "played", played: this.played, idle: idle });
    }
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
registerProcessor("player", PlayerProcessor);
