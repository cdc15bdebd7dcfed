//! An HTTP/2 shim in front of tonic for the `:authority` older drivers send.
//!
//! Driver releases up to v1.5.x dial the provider with the socket path as the gRPC target,
//! so every request carries `:authority: /var/run/secrets-store-csi-providers/kvault.sock`.
//! h2 (under hyper and tonic) rejects that header before any service runs and resets the
//! stream. This shim sits on each accepted connection and rewrites only the client→server
//! header blocks: it HPACK-decodes every HEADERS/CONTINUATION block (so its decoder follows
//! the client's dynamic table), replaces an `:authority` that is not a valid URI authority
//! with `localhost`, and re-encodes the block with literals only (so the server's decoder
//! table stays empty and can never disagree with anything). Every other frame, and the
//! whole server→client direction, passes through untouched.
//!
//! Buffers are capped: a header block may be at most [`MAX_HEADER_BLOCK`] bytes encoded and
//! [`MAX_DECODED_HEADERS`] decoded; anything else is streamed.

use axum::http::uri::Authority;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest header block (HEADERS + CONTINUATION payloads) the shim buffers.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest decoded header list (names + values + 32 bytes per field, as HTTP/2 counts).
pub const MAX_DECODED_HEADERS: usize = 256 * 1024;
/// The largest frame every HTTP/2 peer must accept (SETTINGS_MAX_FRAME_SIZE default).
const MAX_FRAME: usize = 16_384;
/// Dynamic table sizes the client may announce (h2 advertises the default 4096).
const MAX_TABLE_SIZE: usize = 65_536;
/// What replaces an authority h2 would reject.
pub const REPLACEMENT_AUTHORITY: &str = "localhost";

const TYPE_HEADERS: u8 = 0x1;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not an HTTP/2 connection (bad preface)")]
    Preface,
    #[error("HTTP/2 protocol error: {0}")]
    Protocol(&'static str),
    #[error("header block larger than the shim accepts")]
    TooLarge,
    #[error("HPACK: {0}")]
    Hpack(String),
}

/// True when h2 would refuse this `:authority` value.
pub fn needs_rewrite(value: &[u8]) -> bool {
    Authority::try_from(value).is_err()
}

/// Writes an HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// "Literal Header Field without Indexing — New Name" with raw (non-Huffman) strings.
pub fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_int(out, 0x00, 7, name.len());
    out.extend_from_slice(name);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// The client→server half of one connection: rewrites header blocks, passes the rest.
pub struct Rewriter {
    decoder: loona_hpack::Decoder<'static>,
    /// Header blocks whose `:authority` was replaced.
    pub rewritten: u64,
    counter: Option<prometheus_client::metrics::counter::Counter>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Self {
            decoder,
            rewritten: 0,
            counter: None,
        }
    }
}

impl Rewriter {
    /// A rewriter that also counts its rewrites in a metric.
    pub fn with_counter(counter: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            counter: Some(counter),
            ..Self::default()
        }
    }

    /// Decodes one complete header block and returns its re-encoding.
    pub fn rewrite_block(&mut self, block: &[u8]) -> Result<Vec<u8>, ShimError> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut decoded = 0usize;
        let mut too_large = false;
        let mut replaced = false;
        self.decoder
            .decode_with_cb(block, |name, value| {
                // Keep decoding past the cap so the dynamic table stays in step; just stop
                // producing output.
                decoded += name.len() + value.len() + 32;
                if decoded > MAX_DECODED_HEADERS {
                    too_large = true;
                    return;
                }
                if name.as_ref() == b":authority" && needs_rewrite(&value) {
                    replaced = true;
                    encode_literal(&mut out, &name, REPLACEMENT_AUTHORITY.as_bytes());
                } else {
                    encode_literal(&mut out, &name, &value);
                }
            })
            .map_err(|e| ShimError::Hpack(e.to_string()))?;
        if too_large {
            return Err(ShimError::TooLarge);
        }
        if replaced {
            self.rewritten += 1;
            if let Some(c) = &self.counter {
                c.inc();
            }
        }
        Ok(out)
    }

    /// Pumps frames from `client` to `server` until the client closes (Ok) or breaks the
    /// protocol (Err: the caller drops the connection).
    pub async fn pump<R, W>(&mut self, client: &mut R, server: &mut W) -> Result<(), ShimError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut preface = [0u8; 24];
        match client.read_exact(&mut preface).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if &preface != PREFACE {
            return Err(ShimError::Preface);
        }
        server.write_all(&preface).await?;
        server.flush().await?;
        loop {
            let mut head = [0u8; 9];
            match client.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let kind = head[3];
            let flags = head[4];
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match kind {
                TYPE_HEADERS => self.headers(client, server, len, flags, stream).await?,
                TYPE_CONTINUATION => {
                    return Err(ShimError::Protocol("CONTINUATION without HEADERS"));
                }
                TYPE_PUSH_PROMISE => return Err(ShimError::Protocol("PUSH_PROMISE from a client")),
                _ => {
                    server.write_all(&head).await?;
                    let copied =
                        tokio::io::copy(&mut (&mut *client).take(len as u64), server).await?;
                    if copied != len as u64 {
                        return Err(ShimError::Protocol("connection closed inside a frame"));
                    }
                }
            }
            server.flush().await?;
        }
    }

    async fn headers<R, W>(
        &mut self,
        client: &mut R,
        server: &mut W,
        len: usize,
        flags: u8,
        stream: u32,
    ) -> Result<(), ShimError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if len > MAX_FRAME.max(MAX_HEADER_BLOCK) {
            return Err(ShimError::TooLarge);
        }
        let mut payload = vec![0u8; len];
        client.read_exact(&mut payload).await?;
        let mut body: &[u8] = &payload;
        if flags & FLAG_PADDED != 0 {
            let (&pad, rest) = body
                .split_first()
                .ok_or(ShimError::Protocol("PADDED HEADERS without a pad length"))?;
            let pad = pad as usize;
            body = rest
                .len()
                .checked_sub(pad)
                .and_then(|end| rest.get(..end))
                .ok_or(ShimError::Protocol("padding longer than the frame"))?;
        }
        let mut priority: &[u8] = &[];
        if flags & FLAG_PRIORITY != 0 {
            if body.len() < 5 {
                return Err(ShimError::Protocol("PRIORITY HEADERS shorter than 5 bytes"));
            }
            (priority, body) = body.split_at(5);
        }
        let mut block = body.to_vec();
        let mut end_headers = flags & FLAG_END_HEADERS != 0;
        while !end_headers {
            let mut head = [0u8; 9];
            client.read_exact(&mut head).await?;
            let clen = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let cstream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if head[3] != TYPE_CONTINUATION || cstream != stream {
                return Err(ShimError::Protocol(
                    "a header block must continue with CONTINUATION on the same stream",
                ));
            }
            if block.len() + clen > MAX_HEADER_BLOCK {
                return Err(ShimError::TooLarge);
            }
            let start = block.len();
            block.resize(start + clen, 0);
            client
                .read_exact(block.get_mut(start..).unwrap_or_default())
                .await?;
            end_headers = head[4] & FLAG_END_HEADERS != 0;
        }
        let encoded = self.rewrite_block(&block)?;
        write_header_frames(server, stream, flags & FLAG_END_STREAM, priority, &encoded).await
    }
}

fn frame_head(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
    let l = (len as u32).to_be_bytes();
    let s = stream.to_be_bytes();
    [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
}

/// Writes a header block as HEADERS (+ CONTINUATION) frames no larger than 16 KiB.
async fn write_header_frames<W: AsyncWrite + Unpin>(
    server: &mut W,
    stream: u32,
    end_stream: u8,
    priority: &[u8],
    block: &[u8],
) -> Result<(), ShimError> {
    let first_room = MAX_FRAME - priority.len();
    let (first, mut rest) = block.split_at(block.len().min(first_room));
    let mut flags = end_stream;
    if !priority.is_empty() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    server
        .write_all(&frame_head(
            priority.len() + first.len(),
            TYPE_HEADERS,
            flags,
            stream,
        ))
        .await?;
    server.write_all(priority).await?;
    server.write_all(first).await?;
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = more;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        server
            .write_all(&frame_head(chunk.len(), TYPE_CONTINUATION, flags, stream))
            .await?;
        server.write_all(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"/var/run/secrets-store-csi-providers/kvault.sock";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = frame_head(payload.len(), kind, flags, stream).to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// Runs the shim over `input` and parses what reaches the server.
    async fn run(input: Vec<u8>) -> (Result<(), ShimError>, Vec<(u8, u8, u32, Vec<u8>)>, u64) {
        let (mut server_side, mut shim_out) = tokio::io::duplex(1 << 20);
        let mut rw = Rewriter::default();
        let mut src: &[u8] = &input;
        let r = rw.pump(&mut src, &mut shim_out).await;
        drop(shim_out);
        let mut out = Vec::new();
        server_side.read_to_end(&mut out).await.unwrap();
        let mut frames = Vec::new();
        if out.len() >= 24 {
            assert_eq!(&out[..24], PREFACE);
            let mut rest = &out[24..];
            while rest.len() >= 9 {
                let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
                if rest.len() < 9 + len {
                    break; // a frame cut short by the client
                }
                let s = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
                frames.push((rest[3], rest[4], s, rest[9..9 + len].to_vec()));
                rest = &rest[9 + len..];
            }
        }
        (r, frames, rw.rewritten)
    }

    fn request_headers(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (
                b":path".to_vec(),
                b"/v1alpha1.CSIDriverProvider/Version".to_vec(),
            ),
            (b":authority".to_vec(), authority.to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
        ]
    }

    /// Collects the server-side header blocks (HEADERS + CONTINUATION) and decodes them.
    fn decode_blocks(frames: &[(u8, u8, u32, Vec<u8>)]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = loona_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for (kind, flags, _, payload) in frames {
            match *kind {
                TYPE_HEADERS => {
                    assert_eq!(flags & FLAG_PADDED, 0);
                    let body = if flags & FLAG_PRIORITY != 0 {
                        &payload[5..]
                    } else {
                        &payload[..]
                    };
                    cur = Some(body.to_vec());
                }
                TYPE_CONTINUATION => cur.as_mut().unwrap().extend_from_slice(payload),
                _ => continue,
            }
            if flags & FLAG_END_HEADERS != 0 {
                blocks.push(dec.decode(&cur.take().unwrap()).unwrap());
            }
        }
        blocks
    }

    #[tokio::test]
    async fn rewrites_a_socket_path_authority_and_keeps_everything_else() {
        // A Huffman-coding, incrementally indexing encoder, as grpc-go's is: the second
        // request refers to the first one's authority through the dynamic table.
        let mut enc = loona_hpack::Encoder::new();
        let h = request_headers(OLD);
        let b1 = enc.encode(h.iter().map(|(n, v)| (&n[..], &v[..])));
        let b2 = enc.encode(h.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &b1));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &b2,
        ));
        let (r, frames, rewritten) = run(input).await;
        r.unwrap();
        assert_eq!(rewritten, 2);
        assert_eq!(frames.len(), 4);
        assert_eq!((frames[0].0, frames[0].3.len()), (0x4, 0));
        assert_eq!(frames[2], (0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0".to_vec()));
        assert_eq!(frames[3].1 & FLAG_END_STREAM, FLAG_END_STREAM);
        let blocks = decode_blocks(&frames);
        assert_eq!(blocks.len(), 2);
        for b in blocks {
            assert_eq!(b, request_headers(b"localhost"));
        }
    }

    #[tokio::test]
    async fn valid_authorities_are_kept() {
        for a in [&b"localhost"[..], b"kvault.sock", b"127.0.0.1:80", b"unix"] {
            let mut enc = loona_hpack::Encoder::new();
            let b = enc.encode(request_headers(a).iter().map(|(n, v)| (&n[..], &v[..])));
            let mut input = PREFACE.to_vec();
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &b));
            let (r, frames, rewritten) = run(input).await;
            r.unwrap();
            assert_eq!(rewritten, 0);
            assert_eq!(decode_blocks(&frames)[0], request_headers(a));
        }
    }

    #[tokio::test]
    async fn padded_priority_and_continuation_frames() {
        let mut enc = loona_hpack::Encoder::new();
        let mut headers = request_headers(OLD);
        // A large header block: it must come out split into ≤16 KiB frames.
        headers.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let block = enc.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let (a, rest) = block.split_at(100);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut first = vec![3u8]; // pad length
        first.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
        first.extend_from_slice(a);
        first.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            5,
            &first,
        ));
        input.extend(frame(TYPE_CONTINUATION, 0, 5, b));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, c));
        let (r, frames, _) = run(input).await;
        r.unwrap();
        assert!(frames.len() >= 3);
        assert!(frames.iter().all(|f| f.3.len() <= MAX_FRAME && f.2 == 5));
        assert_eq!(frames[0].1, FLAG_PRIORITY | FLAG_END_STREAM);
        assert_eq!(&frames[0].3[..5], &[0, 0, 0, 0, 16]);
        let mut expected = request_headers(b"localhost");
        expected.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        assert_eq!(decode_blocks(&frames), vec![expected]);
    }

    #[tokio::test]
    async fn protocol_violations_close_the_connection() {
        let (r, frames, _) = run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(matches!(r, Err(ShimError::Preface)));
        assert!(frames.is_empty());
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b"x"));
        assert!(matches!(run(input).await.0, Err(ShimError::Protocol(_))));
        // HEADERS interrupted by another frame.
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, 0, 1, b"\x82"));
        input.extend(frame(0x0, 0, 1, b""));
        assert!(matches!(run(input).await.0, Err(ShimError::Protocol(_))));
        // Garbage HPACK.
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            b"\xff\xff\xff\xff\xff\xff\xff",
        ));
        assert!(matches!(run(input).await.0, Err(ShimError::Hpack(_))));
        // An endless header block.
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, 0, 1, &[0u8; 16_000]));
        for _ in 0..5 {
            input.extend(frame(TYPE_CONTINUATION, 0, 1, &[0u8; 16_000]));
        }
        assert!(matches!(run(input).await.0, Err(ShimError::TooLarge)));
        // A frame cut short.
        let mut input = PREFACE.to_vec();
        input.extend(&frame(0x0, 0, 1, b"abcdef")[..12]);
        assert!(run(input).await.0.is_err());
        // Clean EOF before and after the preface.
        assert!(run(Vec::new()).await.0.is_ok());
        assert!(run(PREFACE.to_vec()).await.0.is_ok());
    }

    #[test]
    fn hpack_integers() {
        let mut v = Vec::new();
        hpack_int(&mut v, 0, 5, 10);
        hpack_int(&mut v, 0, 5, 1337);
        assert_eq!(v, vec![10, 31, 154, 10]);
        assert!(needs_rewrite(OLD));
        assert!(!needs_rewrite(b"localhost"));
    }
}
