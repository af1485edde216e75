//! Messages between nodes (`wire::Request`, `wire::Response`) through the nodes' own libp2p
//! request-response CBOR codec (cbor4ii) at the nodes' size limits, and the JSON bodies of the
//! local API in both directions.

use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::request_response::cbor::codec::Codec;
use libp2p::request_response::Codec as _;
use libp2p::StreamProtocol;
use mesh_node::net::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use mesh_protocol::api::{
    ApplyRequest, ApplyResponse, DeleteRequest, Deployment, Logs, RecordInfo, SignedRecord,
};
use mesh_protocol::wire::{Request, Response};
use serde_json::Value;

use super::corpus;
use super::harness::{mutate_bytes, mutate_json, run, Rng};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/rpc/1");

fn codec() -> Codec<Request, Response> {
    Codec::default()
        .set_request_size_maximum(MAX_REQUEST_BYTES)
        .set_response_size_maximum(MAX_RESPONSE_BYTES)
}

fn write_request(r: Request) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    block_on(codec().write_request(&PROTOCOL, &mut out, r)).unwrap();
    out.into_inner()
}

fn write_response(r: Response) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    block_on(codec().write_response(&PROTOCOL, &mut out, r)).unwrap();
    out.into_inner()
}

/// A message's JSON tree without its `null` entries: the codec writes a tree's `null` as a
/// unit (an empty array), not as a `None`, and a missing `Option` field is a `None`.
fn without_nulls(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|_, v| !v.is_null());
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Any JSON tree in CBOR, as the codec writes it: for structure-aware mutations.
fn write_tree(v: Value) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    block_on(Codec::<Value, Value>::default().write_request(&PROTOCOL, &mut out, v)).unwrap();
    out.into_inner()
}

fn read_request(bytes: &[u8]) -> std::io::Result<Request> {
    block_on(codec().read_request(&PROTOCOL, &mut Cursor::new(bytes)))
}

fn read_response(bytes: &[u8]) -> std::io::Result<Response> {
    block_on(codec().read_response(&PROTOCOL, &mut Cursor::new(bytes)))
}

/// CBOR heads with edge arguments: huge lengths, indefinite lengths, breaks, tags, floats,
/// simple values, deep nesting.
const CBOR: &[&[u8]] = &[
    &[0x18, 0xff],
    &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x7b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    &[0x9b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x9a, 0x7f, 0xff, 0xff, 0xff],
    &[0x5f],
    &[0x7f],
    &[0x9f],
    &[0xbf],
    &[0xff],
    &[0xc0],
    &[0xd8, 0x20],
    &[0xf4],
    &[0xf6],
    &[0xf7],
    &[0xf9, 0x7e, 0x00],
    &[0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
    &[0x1c],
    &[0x60],
    &[0x80],
    &[0xa0],
    &[0x61, b'x'],
    &[0x64, b'L', b'i', b's', b't'],
    &[0x62, 0xc3, 0x28],
    &[0x81; 300],
    &[0xa1, 0x61, b'x'],
];

/// Mutated CBOR: raw bytes, or a message's JSON tree mutated and written in CBOR.
fn mutate_cbor(rng: &mut Rng, seeds: &[Vec<u8>], trees: &[Value]) -> Vec<u8> {
    if rng.chance(2) {
        let mut bytes = rng.pick(seeds).clone();
        mutate_bytes(rng, &mut bytes, CBOR, seeds);
        bytes
    } else {
        let mut tree = rng.pick(trees).clone();
        for _ in 0..=rng.below(3) {
            mutate_json(
                rng,
                &mut tree,
                trees,
                &["id", "record", "bytes", "data_key", "tail", "offset"],
            );
        }
        write_tree(tree)
    }
}

#[test]
fn peer_requests() {
    let c = corpus();
    let seeds: Vec<Vec<u8>> = c.requests.iter().cloned().map(write_request).collect();
    let trees: Vec<Value> = c
        .requests
        .iter()
        .map(|r| without_nulls(serde_json::to_value(r).unwrap()))
        .collect();
    for (tree, request) in trees.iter().zip(&c.requests) {
        let decoded = read_request(&write_tree(tree.clone()));
        assert_eq!(decoded.as_ref().ok(), Some(request), "{decoded:?}: {tree}");
    }
    run(
        "peer-requests",
        &seeds,
        |rng| mutate_cbor(rng, &seeds, &trees),
        |bytes| {
            let Ok(request) = read_request(bytes) else {
                return Ok(false);
            };
            let _ = request.name();
            match read_request(&write_request(request.clone())) {
                Ok(again) if again == request => Ok(true),
                other => Err(format!("{request:?} re-encoded decodes to {other:?}")),
            }
        },
    );
}

#[test]
fn peer_responses() {
    let c = corpus();
    let seeds: Vec<Vec<u8>> = c.responses.iter().cloned().map(write_response).collect();
    let trees: Vec<Value> = c
        .responses
        .iter()
        .map(|r| without_nulls(serde_json::to_value(r).unwrap()))
        .collect();
    run(
        "peer-responses",
        &seeds,
        |rng| mutate_cbor(rng, &seeds, &trees),
        |bytes| {
            let Ok(response) = read_response(bytes) else {
                return Ok(false);
            };
            match read_response(&write_response(response.clone())) {
                Ok(again) if again == response => Ok(true),
                other => Err(format!("{response:?} re-encoded decodes to {other:?}")),
            }
        },
    );
}

/// Whether `bytes` decode as `$t`; an error if the value does not re-encode to itself.
macro_rules! json_round_trip {
    ($t:ty, $bytes:expr) => {{
        match serde_json::from_slice::<$t>($bytes) {
            Err(_) => Ok(false),
            Ok(value) => {
                let json = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
                match serde_json::from_slice::<$t>(&json) {
                    Ok(again) if again == value => Ok(true),
                    other => Err(format!("{value:?} re-encoded decodes to {other:?}")),
                }
            }
        }
    }};
}

const JSON: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\\\"",
    b"\"records\":[",
    b"\"data_key\":\"",
    b"\"bytes\":\"!!\"",
    b"====",
];

#[test]
fn local_api_bodies() {
    let c = corpus();
    let mut seeds: Vec<Vec<u8>> = c
        .records
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    for r in &c.requests {
        match r {
            Request::Apply(a) => seeds.push(serde_json::to_vec(a).unwrap()),
            Request::Delete { record, .. } => seeds.push(
                serde_json::to_vec(&DeleteRequest {
                    record: record.clone(),
                })
                .unwrap(),
            ),
            _ => {}
        }
    }
    for r in &c.responses {
        let body = match r {
            Response::Applied(a) => serde_json::to_vec(a),
            Response::Deployment(d) => serde_json::to_vec(d),
            Response::Deployments(d) => serde_json::to_vec(d),
            Response::Logs(l) => serde_json::to_vec(l),
            Response::Record(Some(i)) => serde_json::to_vec(i),
            Response::History(h) => serde_json::to_vec(h),
            _ => continue,
        };
        seeds.push(body.unwrap());
    }
    let trees: Vec<Value> = seeds
        .iter()
        .map(|s| serde_json::from_slice(s).unwrap())
        .collect();
    run(
        "local-api",
        &seeds,
        |rng| {
            if rng.chance(2) {
                let mut bytes = rng.pick(&seeds).clone();
                mutate_bytes(rng, &mut bytes, JSON, &seeds);
                bytes
            } else {
                let mut tree = rng.pick(&trees).clone();
                mutate_json(
                    rng,
                    &mut tree,
                    &trees,
                    &[
                        "manifest", "records", "bytes", "data_key", "modules", "replicas",
                    ],
                );
                serde_json::to_vec(&tree).unwrap()
            }
        },
        |bytes| {
            // What the node reads (bodies of POST and DELETE) and what meshctl reads back.
            let decoded = [
                json_round_trip!(ApplyRequest, bytes)?,
                json_round_trip!(DeleteRequest, bytes)?,
                json_round_trip!(SignedRecord, bytes)?,
                json_round_trip!(ApplyResponse, bytes)?,
                json_round_trip!(Deployment, bytes)?,
                json_round_trip!(Vec<Deployment>, bytes)?,
                json_round_trip!(Logs, bytes)?,
                json_round_trip!(RecordInfo, bytes)?,
                json_round_trip!(Vec<SignedRecord>, bytes)?,
            ];
            Ok(decoded.contains(&true))
        },
    );
}
