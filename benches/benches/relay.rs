//! Per-packet cost of the media plane's relay core, without sockets.
//!
//! One answered call among 100 offered ones in a `Relay` with `NoSockets`; each iteration
//! copies a packet template into a reused buffer (as a receive would), bumps its sequence number and runs
//! `Relay::on_packet`, which latches, validates, maps the payload type and rewrites SSRC,
//! sequence number and timestamp in place. Groups:
//!
//! - `relay_on_packet/rtp_172`: a 172-byte RTP packet (G.711 20 ms) forwarded A -> B.
//! - `relay_on_packet/rtcp_rr`: a 32-byte receiver report forwarded over the RTCP port pair
//!   (sender and report-block SSRC rewrite).
//! - `relay_on_packet/stranger`: a packet from an unlatched address, dropped and counted.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wavegate_mediaplane::relay::{NoSockets, Relay, RelayConfig, Side, Verdict};
use wavegate_mediaplane::rtp::write_rtp;
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag, ShardId};

const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
const ANSWER: &str = "v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn setup() -> (Relay, u16, u16) {
    let config = RelayConfig {
        shard: ShardId(0),
        ports: "20000-29999".parse().expect("range"),
        announce_ip: "127.0.0.1".parse().expect("ip"),
        media_timeout_secs: 60,
    };
    let mut relay = Relay::new(config, 1);
    let call = CallId::new("bench").expect("id");
    let ft = LegTag::new("ft").expect("tag");
    let tt = LegTag::new("tt").expect("tag");
    // A few other calls so the lookup is not trivially the first slot.
    for i in 0..100 {
        let other = CallId::new(&format!("other-{i}")).expect("id");
        relay.offer(0, &other, &ft, OFFER, &OfferFlags::default(), &mut NoSockets).expect("offer");
    }
    relay.offer(0, &call, &ft, OFFER, &OfferFlags::default(), &mut NoSockets).expect("offer");
    relay.answer(0, &call, &ft, &tt, ANSWER, &mut NoSockets).expect("answer");
    let a = relay.leg_ports(&call, Side::Offerer).expect("ports")[0];
    let b = relay.leg_ports(&call, Side::Answerer).expect("ports")[0];
    (relay, a, b)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_on_packet");
    g.throughput(Throughput::Elements(1));
    let src: SocketAddr = "10.0.0.1:4000".parse().expect("addr");

    let (mut relay, a, _) = setup();
    let mut template = [0u8; 172];
    write_rtp(&mut template, 0, 0, 0, 0x1234_5678, &[0xd5; 160]).expect("packet");
    let mut seq: u16 = 0;
    let mut now: u64 = 0;
    g.bench_function("rtp_172", |bench| {
        let mut buf = [0u8; 2048];
        bench.iter(|| {
            buf[..172].copy_from_slice(&template);
            seq = seq.wrapping_add(1);
            now += 20_000_000;
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            let v = relay.on_packet(now, a, src, black_box(&mut buf[..172]));
            assert!(matches!(v, Verdict::Forward(_)));
            black_box(v)
        })
    });

    let (mut relay, a, _) = setup();
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0x1111_1111u32.to_be_bytes());
    rr.extend_from_slice(&0x2222_2222u32.to_be_bytes());
    rr.extend_from_slice(&[0; 20]);
    let rtcp_src: SocketAddr = "10.0.0.1:4001".parse().expect("addr");
    g.bench_function("rtcp_rr", |bench| {
        let mut buf = [0u8; 2048];
        bench.iter(|| {
            buf[..rr.len()].copy_from_slice(&rr);
            let v = relay.on_packet(0, a + 1, rtcp_src, black_box(&mut buf[..rr.len()]));
            assert!(matches!(v, Verdict::Forward(_)));
            black_box(v)
        })
    });

    let (mut relay, a, _) = setup();
    let mut buf = template;
    let _ = relay.on_packet(0, a, src, &mut buf); // latch the real peer
    let stranger: SocketAddr = "10.9.9.9:1".parse().expect("addr");
    g.bench_function("stranger", |bench| {
        let mut buf = [0u8; 2048];
        bench.iter(|| {
            buf[..172].copy_from_slice(&template);
            black_box(relay.on_packet(0, a, stranger, black_box(&mut buf[..172])))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
