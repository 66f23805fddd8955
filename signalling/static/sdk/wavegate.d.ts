// Types of the Wavegate JavaScript SDK (wavegate.js). Wire protocol: docs/websocket-api.md.

export declare const SESSION_STATUS: {
  readonly PENDING: 'PENDING'; readonly ESTABLISHED: 'ESTABLISHED'; readonly REGISTERED: 'REGISTERED';
  readonly UNREGISTERED: 'UNREGISTERED'; readonly DISCONNECTED: 'DISCONNECTED'; readonly FAILED: 'FAILED';
  readonly INCOMING_CALL: 'INCOMING_CALL';
};
export type SessionStatus = typeof SESSION_STATUS[keyof typeof SESSION_STATUS];

export declare const CALL_STATUS: {
  readonly NEW: 'NEW'; readonly PENDING: 'PENDING'; readonly TRYING: 'TRYING'; readonly RING: 'RING';
  readonly RING_MEDIA: 'RING_MEDIA'; readonly SESSION_PROGRESS: 'SESSION_PROGRESS';
  readonly ESTABLISHED: 'ESTABLISHED'; readonly HOLD: 'HOLD'; readonly BUSY: 'BUSY';
  readonly FINISH: 'FINISH'; readonly FAILED: 'FAILED';
};
export type CallStatus = typeof CALL_STATUS[keyof typeof CALL_STATUS];

export declare const MEDIA_DEVICE_KIND: { readonly INPUT: 'input'; readonly OUTPUT: 'output'; readonly ALL: 'all' };
export type MediaDeviceKind = typeof MEDIA_DEVICE_KIND[keyof typeof MEDIA_DEVICE_KIND];

export declare const DTMF_TYPE: { readonly RFC2833: 'RFC2833'; readonly INFO: 'INFO' };
export type DtmfType = typeof DTMF_TYPE[keyof typeof DTMF_TYPE];

export declare class WavegateError extends Error { name: 'WavegateError'; }

export interface SipOptions {
  login: string;
  authenticationName?: string;
  password?: string;
  domain: string;
  outboundProxy?: string;
  port?: number | string;
  transport?: 'udp' | 'tcp';
  registerRequired?: boolean;
  visibleName?: string;
}

export interface SessionOptions {
  urlServer?: string;
  sipOptions?: SipOptions;
  /** The server's application key or auth token (config `ws.app_keys`), sent with `connect`. */
  appKey?: string;
  /** Place calls the REST API starts for this session (`startCall`) at once; default true. */
  autoStartCalls?: boolean;
  /** Options (displays, constraints) for calls the REST API starts; `callee` comes from the server. */
  startCallOptions?: Omit<CallOptions, 'callee'>;
}

export interface CallOptions {
  callee: string;
  /** Offer only this video codec ('VP8', or 'H264' as 42e01f packetization-mode=1); needs
   * RTCRtpTransceiver.setCodecPreferences, else the call fails with a clear cause. */
  videoCodec?: 'VP8' | 'H264';
  visibleName?: string;
  /** Gets a muted <video> of the local camera when the constraints ask for video. */
  localVideoDisplay?: HTMLElement;
  /** Gets the <video> (or, audio-only, <audio>) element playing what the far side sends. */
  remoteVideoDisplay?: HTMLElement;
  /** Passed to getUserMedia as given, e.g. `{ audio: true, video: { width: 640, height: 480,
   * deviceId: { exact: id } } }`; default `{ audio: true, video: false }`. The media plane
   * bridges VP8 and H.264 (packetization-mode=1) video to SIP. */
  constraints?: MediaStreamConstraints;
  receiveAudio?: boolean;
  /** Offer a receive-only video m-line when the constraints have no camera. */
  receiveVideo?: boolean;
}

export interface StreamStats {
  audioStats?: { bytesSent?: number; packetsSent?: number; bytesReceived?: number; packetsReceived?: number;
    packetsLost?: number; jitter?: number; audioLevel?: number };
  videoStats?: { bytesSent?: number; packetsSent?: number; framesEncoded?: number; bytesReceived?: number;
    packetsReceived?: number; framesDecoded?: number };
}
export interface CallStats { outboundStream: StreamStats; inboundStream: StreamStats; }

export interface MediaDevice { id: string; label: string; type: 'mic' | 'speaker' | 'camera'; }

export declare class Session {
  /** 'START_CALL' passes the Call a REST `call/startup` created for this session (see autoStartCalls). */
  on(event: SessionStatus | 'START_CALL' | 'error' | 'pong', fn: (arg: any) => void): this;
  status(): SessionStatus;
  cause(): string;
  id(): string;
  getCalls(): Call[];
  createCall(options: CallOptions): Call;
  ping(): void;
  disconnect(): void;
  sendRaw(text: string): void;
}

export declare class Call {
  on(event: CallStatus | 'DTMF' | 'MESSAGE' | 'TRANSFER', fn: (arg: any) => void): this;
  id(): string;
  status(): CallStatus;
  cause(): string;
  callee(): string;
  peerConnection(): RTCPeerConnection | null;
  call(): Promise<void>;
  /** Answers an incoming call (delivered with SESSION_STATUS.INCOMING_CALL). */
  answer(options?: { constraints?: MediaStreamConstraints; remoteVideoDisplay?: HTMLElement }): Promise<void>;
  caller(): string;
  isIncoming(): boolean;
  hangup(): void;
  hold(): void;
  unhold(): void;
  sendDTMF(digits: string, type?: DtmfType): void;
  /** Blind transfer (SIP REFER); progress as 'TRANSFER' events {status, code, cause}. */
  transfer(target: string): void;
  /** In-dialog SIP MESSAGE; the far end's texts come as 'MESSAGE' events {text, contentType}. */
  sendMessage(text: string): void;
  /** Switches the microphone (the given one or the next); resolves to the new device id. */
  switchMic(deviceId?: string): Promise<string>;
  /** Switches the camera (the given one or the next); resolves to the new device id. */
  switchCam(deviceId?: string): Promise<string>;
  muteAudio(): void;
  unmuteAudio(): void;
  isAudioMuted(): boolean;
  muteVideo(): void;
  unmuteVideo(): void;
  setAudioOutputId(id: string): Promise<void>;
  getStats(cb: (stats: CallStats) => void): Promise<CallStats>;
}

export declare function createSession(options: SessionOptions): Session;
export declare function getMediaDevices(unused: unknown, labels: boolean, kind?: MediaDeviceKind): Promise<MediaDevice[]>;

export declare const Flashphoner: {
  createSession: typeof createSession;
  getMediaDevices: typeof getMediaDevices;
  constants: { SESSION_STATUS: typeof SESSION_STATUS; CALL_STATUS: typeof CALL_STATUS;
    MEDIA_DEVICE_KIND: typeof MEDIA_DEVICE_KIND; DTMF_TYPE: typeof DTMF_TYPE };
  SESSION_STATUS: typeof SESSION_STATUS; CALL_STATUS: typeof CALL_STATUS;
  MEDIA_DEVICE_KIND: typeof MEDIA_DEVICE_KIND; DTMF_TYPE: typeof DTMF_TYPE;
  init(): void;
};
declare global { var Flashphoner: typeof import('./wavegate').Flashphoner; }
