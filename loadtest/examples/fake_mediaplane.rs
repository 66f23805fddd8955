//! A stand-in media plane for testing the load generator itself, not a media plane.
//!
//! It speaks the real control contract (inherited region and doorbells, Ping / Offer /
//! Answer / Delete) but relays every call through the same two sockets: one facing all A
//! endpoints, one facing all B endpoints, forwarding to the address each side's SDP named.
//! That is enough to exercise the load generator's pacing, probes, accounting and reports
//! without the real media plane; its figures say nothing about Wavegate's performance.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wavegate_shared::doorbell::Doorbell;
use wavegate_shared::protocol::{
    Answer, CallStats, Command, Delete, LegStats, Offer, Ping, Pong, SdpReply, decode_command,
    encode_reply,
};
use wavegate_shared::region::Region;
use wavegate_shared::spawn::inherited_fds;

struct Shared {
    a_facing: UdpSocket,
    b_facing: UdpSocket,
    a_peer: OnceLock<SocketAddr>,
    b_peer: OnceLock<SocketAddr>,
    relayed: AtomicU64,
}

fn sdp_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

fn our_sdp(sock: &UdpSocket) -> String {
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    )
}

fn forward(from: &UdpSocket, to: &UdpSocket, peer: &OnceLock<SocketAddr>, relayed: &AtomicU64) {
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, _)) = from.recv_from(&mut buf)
            && let Some(dst) = peer.get()
            && to.send_to(&buf[..n], dst).is_ok()
        {
            relayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn handle(cmd: Command, id: wavegate_shared::RequestId, shared: &Shared, out: &mut Vec<u8>) {
    let bad = |m: &str| {
        wavegate_shared::protocol::ControlError::new(
            wavegate_shared::protocol::ErrorCode::BadSdp,
            m,
        )
    };
    let _ = match cmd {
        Command::Ping(_) => encode_reply::<Ping>(
            id,
            &Ok(Pong {
                shard: wavegate_shared::ShardId(0),
                calls: 0,
            }),
            out,
        ),
        Command::Offer(o) => {
            let reply = match sdp_addr(&o.sdp) {
                Some(a) => {
                    let _ = shared.a_peer.set(a);
                    Ok(SdpReply {
                        sdp: our_sdp(&shared.b_facing),
                    })
                }
                None => Err(bad("no address")),
            };
            encode_reply::<Offer>(id, &reply, out)
        }
        Command::Answer(a) => {
            let reply = match sdp_addr(&a.sdp) {
                Some(b) => {
                    let _ = shared.b_peer.set(b);
                    Ok(SdpReply {
                        sdp: our_sdp(&shared.a_facing),
                    })
                }
                None => Err(bad("no address")),
            };
            encode_reply::<Answer>(id, &reply, out)
        }
        Command::Delete(d) => {
            let n = shared.relayed.load(Ordering::Relaxed);
            let leg = LegStats {
                rtp_packets_in: n,
                rtp_packets_out: n,
                ..LegStats::default()
            };
            // Whole-process counters, reported once (on the first Delete).
            let leg = if shared.relayed.swap(0, Ordering::Relaxed) > 0 {
                leg
            } else {
                LegStats::default()
            };
            encode_reply::<Delete>(
                id,
                &Ok(CallStats {
                    call: Some(d.call),
                    offerer: leg,
                    ..CallStats::default()
                }),
                out,
            )
        }
        Command::Query(_) => return,
    };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (region_fd, bells) = inherited_fds()?;
    let region = Region::attach(region_fd)?;
    let shared = Arc::new(Shared {
        a_facing: UdpSocket::bind("127.0.0.1:0")?,
        b_facing: UdpSocket::bind("127.0.0.1:0")?,
        a_peer: OnceLock::new(),
        b_peer: OnceLock::new(),
        relayed: AtomicU64::new(0),
    });
    for (from_a, s) in [(true, shared.clone()), (false, shared.clone())] {
        std::thread::spawn(move || {
            if from_a {
                forward(&s.a_facing, &s.b_facing, &s.b_peer, &s.relayed);
            } else {
                forward(&s.b_facing, &s.a_facing, &s.a_peer, &s.relayed);
            }
        });
    }
    let mut workers = Vec::new();
    for (ch, bell) in region.take_guest_channels()?.into_iter().zip(bells) {
        let bell = Doorbell::from_fd(bell)?;
        let shared = shared.clone();
        workers.push(std::thread::spawn(move || {
            let (mut commands, mut events) = (ch.commands, ch.events);
            let (mut frame, mut out) = (Vec::new(), Vec::new());
            loop {
                match commands.try_pop(&mut frame) {
                    Ok(true) => {
                        let Ok((id, cmd)) = decode_command(&frame) else {
                            continue;
                        };
                        out.clear();
                        handle(cmd, id, &shared, &mut out);
                        if !out.is_empty() && matches!(events.try_push(&out), Ok(true)) {
                            bell.ring();
                        }
                    }
                    Ok(false) => {
                        if commands.prepare_sleep() {
                            let _ = bell.wait(Duration::from_millis(100));
                            commands.woke();
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
