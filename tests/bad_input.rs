//! Bad input over raw TCP: the broker closes only the offending connection (or answers with an
//! error), stays up, and serves the next connection.

mod common;

use common::TestBroker;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An ApiVersions v0 request frame (header v1: key, version, correlation id, client id).
fn api_versions_v0(correlation_id: i32) -> Vec<u8> {
    let client = b"raw";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends an ApiVersions request on a new connection and checks the answer: error 0 and a
/// non-empty API list.
fn assert_serving(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(&api_versions_v0(77)).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("response body");
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().unwrap()),
        77,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        0,
        "error code"
    );
    assert!(
        i32::from_be_bytes(body[6..10].try_into().unwrap()) >= 5,
        "api keys listed"
    );
}

/// The broker closed this connection: a read returns EOF (or a reset).
fn assert_closed(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected the connection to be closed, got {n} bytes"),
    }
}

#[test]
fn garbage_oversized_truncated_and_unknown_requests_close_only_their_connection() {
    let broker = TestBroker::start("bad-input");
    let addr = broker.addr;
    assert_serving(addr);

    // Raw garbage whose "size" is negative.
    let mut s = connect(addr);
    s.write_all(&[0xff; 64]).unwrap();
    assert_closed(s);
    assert_serving(addr);

    // A declared 2 GiB frame: refused before any allocation.
    let mut s = connect(addr);
    s.write_all(&0x7fff_fff0i32.to_be_bytes()).unwrap();
    s.write_all(&[0u8; 16]).unwrap();
    assert_closed(s);
    assert_serving(addr);

    // A truncated frame, then the client goes away.
    let mut s = connect(addr);
    let frame = api_versions_v0(1);
    s.write_all(&frame[..frame.len() - 3]).unwrap();
    drop(s);
    assert_serving(addr);

    // An unknown API key.
    let mut s = connect(addr);
    let mut frame = api_versions_v0(2);
    frame[4..6].copy_from_slice(&999i16.to_be_bytes());
    s.write_all(&frame).unwrap();
    assert_closed(s);
    assert_serving(addr);

    // A well-framed body that does not decode (a string length past the end).
    let mut s = connect(addr);
    let mut frame = api_versions_v0(3);
    let n = frame.len();
    frame[n - 5..n - 3].copy_from_slice(&100i16.to_be_bytes());
    s.write_all(&frame).unwrap();
    assert_closed(s);
    assert_serving(addr);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    // Two requests in flight at most: the rest wait in the socket (backpressure), none are lost.
    let broker = TestBroker::start_in(
        common::temp_dir("pipeline"),
        &[("queued.max.requests", "2")],
    );
    let mut s = connect(broker.addr);
    let mut all = Vec::new();
    for id in 0..50 {
        all.extend_from_slice(&api_versions_v0(id));
    }
    s.write_all(&all).unwrap();
    for id in 0..50 {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).unwrap();
        assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), id);
    }
}
