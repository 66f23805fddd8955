//! Speex narrowband (8 kHz, 20 ms frames) and wideband (16 kHz, 20 ms frames) through
//! `speex-sys`, which compiles the vendored libspeex 1.2.1 source (floating-point build), so no
//! system library is needed at run time.
//!
//! The only `unsafe` of the transcoder lives here: the libspeex states are raw pointers owned
//! exclusively by these structs (created in `new`, destroyed in `Drop`), and every call passes
//! buffers whose sizes were checked first. Quality 8 (NB ≈ 15 kbit/s, WB ≈ 23.8 kbit/s),
//! complexity 2; the decoder's perceptual enhancer is on and its PLC conceals lost frames.

use super::codec::{AudioDecoder, AudioEncoder, Codec, CodecError};
use speex_sys as sys;
use std::ffi::{c_char, c_int, c_void};

const MAX_FRAME: usize = 320;

fn mode(wide: bool) -> *const sys::SpeexMode {
    // SAFETY: speex_lib_get_mode returns a pointer to a static mode table.
    unsafe {
        sys::speex_lib_get_mode(if wide {
            sys::SPEEX_MODEID_WB
        } else {
            sys::SPEEX_MODEID_NB
        })
    }
}

fn codec(wide: bool) -> Codec {
    if wide { Codec::SpeexWb } else { Codec::SpeexNb }
}

/// Speex encoder.
pub struct Encoder {
    state: *mut c_void,
    bits: Box<sys::SpeexBits>,
    frame: usize,
    wide: bool,
}

// SAFETY: the libspeex state and bits buffer are owned exclusively by this struct and are never
// shared; libspeex keeps no thread-local or global mutable state for them.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(wide: bool) -> Result<Self, CodecError> {
        // SAFETY: mode() is a valid static mode; a null return is checked.
        let state = unsafe { sys::speex_encoder_init(mode(wide)) };
        if state.is_null() {
            return Err(CodecError::Speex("encoder init failed"));
        }
        // SAFETY: SpeexBits is plain data; speex_bits_init allocates its buffer.
        let mut bits: Box<sys::SpeexBits> = Box::new(unsafe { std::mem::zeroed() });
        let (mut quality, mut complexity, mut frame): (c_int, c_int, c_int) = (8, 2, 0);
        // SAFETY: valid state; each ctl takes a pointer to an int.
        unsafe {
            sys::speex_bits_init(&mut *bits);
            sys::speex_encoder_ctl(
                state,
                sys::SPEEX_SET_QUALITY,
                (&mut quality as *mut c_int).cast(),
            );
            sys::speex_encoder_ctl(
                state,
                sys::SPEEX_SET_COMPLEXITY,
                (&mut complexity as *mut c_int).cast(),
            );
            sys::speex_encoder_ctl(
                state,
                sys::SPEEX_GET_FRAME_SIZE,
                (&mut frame as *mut c_int).cast(),
            );
        }
        let frame = frame as usize;
        if frame == 0 || frame > MAX_FRAME {
            return Err(CodecError::Speex("unexpected frame size"));
        }
        Ok(Self {
            state,
            bits,
            frame,
            wide,
        })
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created in new(), destroyed once.
        unsafe {
            sys::speex_encoder_destroy(self.state);
            sys::speex_bits_destroy(&mut *self.bits);
        }
    }
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.len() % self.frame != 0 {
            return Err(CodecError::Frame {
                codec: codec(self.wide),
                samples: pcm.len(),
            });
        }
        let mut scratch = [0i16; MAX_FRAME];
        // SAFETY: bits is initialised; scratch holds one full frame; out's length bounds the write.
        unsafe {
            sys::speex_bits_reset(&mut *self.bits);
            for f in pcm.chunks_exact(self.frame) {
                scratch[..self.frame].copy_from_slice(f);
                sys::speex_encode_int(self.state, scratch.as_mut_ptr(), &mut *self.bits);
            }
            let n = sys::speex_bits_write(
                &mut *self.bits,
                out.as_mut_ptr() as *mut c_char,
                out.len() as c_int,
            );
            Ok(n.max(0) as usize)
        }
    }
}

/// Speex decoder.
pub struct Decoder {
    state: *mut c_void,
    bits: Box<sys::SpeexBits>,
    frame: usize,
}

// SAFETY: as for Encoder.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new(wide: bool) -> Result<Self, CodecError> {
        // SAFETY: as for Encoder::new.
        let state = unsafe { sys::speex_decoder_init(mode(wide)) };
        if state.is_null() {
            return Err(CodecError::Speex("decoder init failed"));
        }
        // SAFETY: as for Encoder::new.
        let mut bits: Box<sys::SpeexBits> = Box::new(unsafe { std::mem::zeroed() });
        let (mut enh, mut frame): (c_int, c_int) = (1, 0);
        // SAFETY: valid state; int pointers.
        unsafe {
            sys::speex_bits_init(&mut *bits);
            sys::speex_decoder_ctl(state, sys::SPEEX_SET_ENH, (&mut enh as *mut c_int).cast());
            sys::speex_decoder_ctl(
                state,
                sys::SPEEX_GET_FRAME_SIZE,
                (&mut frame as *mut c_int).cast(),
            );
        }
        let frame = frame as usize;
        if frame == 0 || frame > MAX_FRAME {
            return Err(CodecError::Speex("unexpected frame size"));
        }
        Ok(Self { state, bits, frame })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created in new(), destroyed once.
        unsafe {
            sys::speex_decoder_destroy(self.state);
            sys::speex_bits_destroy(&mut *self.bits);
        }
    }
}

impl AudioDecoder for Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let mut n = 0;
        // SAFETY: the payload is copied into the bits buffer; each decode writes one frame into a
        // slice checked to hold it.
        unsafe {
            sys::speex_bits_read_from(
                &mut *self.bits,
                payload.as_ptr() as *const c_char,
                payload.len() as c_int,
            );
            while n + self.frame <= out.len() && sys::speex_bits_remaining(&mut *self.bits) >= 5 {
                let r = sys::speex_decode_int(self.state, &mut *self.bits, out[n..].as_mut_ptr());
                if r == -1 {
                    break; // terminator: no more frames in this packet
                }
                if r != 0 {
                    return Err(CodecError::Payload {
                        codec: Codec::SpeexNb,
                        len: payload.len(),
                    });
                }
                n += self.frame;
            }
        }
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let mut n = 0;
        while n + self.frame <= out.len() {
            // SAFETY: null bits asks libspeex to conceal one frame into a checked slice.
            unsafe {
                sys::speex_decode_int(self.state, std::ptr::null_mut(), out[n..].as_mut_ptr())
            };
            n += self.frame;
        }
        Ok(n)
    }
}
