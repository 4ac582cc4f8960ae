//! Frame reading: sniffs the framing of a G.729 half (raw or ITU serial) and
//! yields one [`Frame`] at a time from any reader, in constant memory. No
//! codec here: this part is pure parsing over `Read`.

use super::{G729Error, FRAME_BYTES};
use std::io::{self, BufReader, Chain, Cursor, Read};

/// ITU serial sync word of a good frame.
const SYNC_GOOD: u16 = 0x6B21;
/// ITU serial sync word of an erased (lost) frame.
const SYNC_ERASED: u16 = 0x6B20;
/// ITU serial bit words.
const BIT_0: u16 = 0x007F;
const BIT_1: u16 = 0x0081;
/// Bytes sniffed before deciding the framing; enough for an ITU header plus
/// a bit word and for the text heuristic.
const SNIFF_BYTES: usize = 64;
/// Fewest leading printable bytes for "this is text, not G.729".
const TEXT_MIN: usize = 16;
/// Read buffer: large enough that decoding does few syscalls.
const READ_BUFFER: usize = 64 * 1024;

/// How the frames of a half are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    /// 10-byte voice frames back to back.
    Raw,
    /// ITU serial bitstream, little-endian words.
    ItuLe,
    /// ITU serial bitstream, big-endian words.
    ItuBe,
}

/// One G.729 frame as the decoder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A voice frame: 80 bits, most significant bit first.
    Voice([u8; FRAME_BYTES]),
    /// An Annex B SID frame (15 or 16 bits, MSB first, zero-padded).
    Sid([u8; 2]),
    /// Annex B DTX: no frame was transmitted (length 0).
    Untransmitted,
    /// The frame was lost; the decoder conceals it.
    Erased,
}

type Input<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// Iterator over the frames of one half. Yields `Err` at most once, then
/// stops.
pub struct FrameReader<R: Read> {
    input: Input<R>,
    format: FrameFormat,
    /// Byte offset of the next frame, for error messages.
    offset: u64,
    partial: u64,
    done: bool,
}

impl<R: Read> FrameReader<R> {
    /// Sniff the first bytes of `input` and decide its framing.
    pub fn new(mut input: R) -> Result<Self, G729Error> {
        let mut head = vec![0u8; SNIFF_BYTES];
        let n = read_full(&mut input, &mut head)?;
        head.truncate(n);
        let format = sniff(&head)?;
        Ok(Self {
            input: BufReader::with_capacity(READ_BUFFER, Cursor::new(head).chain(input)),
            format,
            offset: 0,
            partial: 0,
            done: false,
        })
    }

    /// The detected framing.
    pub fn format(&self) -> FrameFormat {
        self.format
    }

    /// Bytes of a trailing partial frame that were dropped (known once the
    /// iterator is exhausted).
    pub fn partial_bytes_dropped(&self) -> u64 {
        self.partial
    }

    /// Record a trailing partial frame of `bytes` bytes and end the stream.
    fn drop_partial(&mut self, bytes: usize) -> Option<Result<Frame, G729Error>> {
        self.done = true;
        if bytes > 0 {
            self.partial = bytes as u64;
            tracing::warn!(
                bytes,
                offset = self.offset,
                "G.729 half ends with a partial frame; dropped"
            );
        }
        None
    }

    fn next_raw(&mut self) -> Option<Result<Frame, G729Error>> {
        let mut bits = [0u8; FRAME_BYTES];
        match read_full(&mut self.input, &mut bits) {
            Err(e) => Some(Err(e.into())),
            Ok(FRAME_BYTES) => {
                self.offset += FRAME_BYTES as u64;
                Some(Ok(Frame::Voice(bits)))
            }
            Ok(n) => self.drop_partial(n),
        }
    }

    fn next_itu(&mut self, big_endian: bool) -> Option<Result<Frame, G729Error>> {
        let word = |b: &[u8]| {
            let pair = [b[0], b[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        };
        let mut header = [0u8; 4];
        match read_full(&mut self.input, &mut header) {
            Err(e) => return Some(Err(e.into())),
            Ok(4) => {}
            Ok(n) => return self.drop_partial(n),
        }
        let (sync, bits) = (word(&header[..2]), word(&header[2..]));
        if sync != SYNC_GOOD && sync != SYNC_ERASED {
            let offset = self.offset;
            return Some(Err(G729Error::BadSync { offset, word: sync }));
        }
        if !matches!(bits, 0 | 15 | 16 | 80) {
            let offset = self.offset + 2;
            return Some(Err(G729Error::BadLength { offset, bits }));
        }
        let mut body = [0u8; 160];
        let body = &mut body[..usize::from(bits) * 2];
        match read_full(&mut self.input, body) {
            Err(e) => return Some(Err(e.into())),
            Ok(n) if n < body.len() => return self.drop_partial(4 + n),
            Ok(_) => {}
        }
        let body_offset = self.offset + 4;
        self.offset += 4 + body.len() as u64;
        if sync == SYNC_ERASED {
            return Some(Ok(Frame::Erased));
        }
        // Pack the bit words MSB first into bytes, checking each one.
        let mut packed = [0u8; FRAME_BYTES];
        for (i, w) in body.chunks_exact(2).enumerate() {
            let bit = match word(w) {
                BIT_0 => 0,
                BIT_1 => 1,
                other => {
                    let offset = body_offset + 2 * i as u64;
                    return Some(Err(G729Error::BadBitWord {
                        offset,
                        word: other,
                    }));
                }
            };
            packed[i / 8] |= bit << (7 - i % 8);
        }
        Some(Ok(match bits {
            0 => Frame::Untransmitted,
            80 => Frame::Voice(packed),
            _ => Frame::Sid([packed[0], packed[1]]),
        }))
    }
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = Result<Frame, G729Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.format {
            FrameFormat::Raw => self.next_raw(),
            FrameFormat::ItuLe => self.next_itu(false),
            FrameFormat::ItuBe => self.next_itu(true),
        };
        if matches!(item, Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

/// Decide the framing from the first bytes of a half.
fn sniff(head: &[u8]) -> Result<FrameFormat, G729Error> {
    if head.is_empty() {
        return Err(G729Error::Empty);
    }
    for (format, big_endian) in [(FrameFormat::ItuLe, false), (FrameFormat::ItuBe, true)] {
        if looks_like_itu(head, big_endian) {
            return Ok(format);
        }
    }
    if head.starts_with(b"RIFF") {
        return Err(G729Error::NotG729 {
            what: "a WAV (RIFF) file",
        });
    }
    let printable = |b: &u8| b.is_ascii_graphic() || b" \t\r\n".contains(b);
    if head.len() >= TEXT_MIN && head.iter().all(printable) {
        return Err(G729Error::NotG729 {
            what: "text (e.g. an HTML error page)",
        });
    }
    if head.len() < FRAME_BYTES {
        return Err(G729Error::TooShort { len: head.len() });
    }
    Ok(FrameFormat::Raw)
}

/// An ITU header needs a valid sync word, a valid length and (for a good
/// frame with bits) a valid first bit word: a raw frame matches all three
/// with probability ~2^-46, so a raw file is never mistaken for ITU.
fn looks_like_itu(head: &[u8], big_endian: bool) -> bool {
    let word = |i: usize| {
        let pair = [*head.get(i)?, *head.get(i + 1)?];
        Some(if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        })
    };
    matches!(
        (word(0), word(2), word(4)),
        (Some(SYNC_GOOD), Some(0), _)
            | (Some(SYNC_GOOD), Some(15 | 16 | 80), Some(BIT_0 | BIT_1))
            | (Some(SYNC_ERASED), Some(0 | 15 | 16 | 80), _)
    )
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn itu_frame(sync: u16, bits: &[u8], be: bool) -> Vec<u8> {
        let w = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = [w(sync), w(bits.len() as u16)].concat();
        for &b in bits {
            out.extend_from_slice(&w(if b == 1 { BIT_1 } else { BIT_0 }));
        }
        out
    }

    fn bits_of(bytes: &[u8]) -> Vec<u8> {
        (0..bytes.len() * 8)
            .map(|i| bytes[i / 8] >> (7 - i % 8) & 1)
            .collect()
    }

    const VOICE: [u8; 10] = [0x40, 0x8a, 0xc7, 0x40, 0x00, 0xfa, 0xc5, 0x93, 0x2a, 0x56];

    fn all(r: FrameReader<&[u8]>) -> Vec<Result<Frame, G729Error>> {
        r.collect()
    }

    #[test]
    fn sniff_rejects_empty() {
        assert!(matches!(FrameReader::new(&b""[..]), Err(G729Error::Empty)));
    }

    #[test]
    fn sniff_rejects_shorter_than_a_frame() {
        let r = FrameReader::new(&[1u8, 2, 3][..]);
        assert!(matches!(r, Err(G729Error::TooShort { len: 3 })));
    }

    #[test]
    fn sniff_rejects_html_error_page() {
        let page = b"<html><body>404 Not Found</body></html>\r\n";
        let r = FrameReader::new(&page[..]);
        assert!(matches!(r, Err(G729Error::NotG729 { .. })));
    }

    #[test]
    fn sniff_rejects_wav() {
        let r = FrameReader::new(&b"RIFF\x24\0\0\0WAVEfmt "[..]);
        assert!(matches!(r, Err(G729Error::NotG729 { .. })));
    }

    #[test]
    fn raw_reader_yields_voice_frames() {
        let data = [VOICE, VOICE].concat();
        let r = FrameReader::new(&data[..]).unwrap();
        assert_eq!(r.format(), FrameFormat::Raw);
        let frames: Vec<_> = all(r).into_iter().map(|f| f.unwrap()).collect();
        assert_eq!(frames, vec![Frame::Voice(VOICE); 2]);
    }

    #[test]
    fn raw_reader_drops_trailing_partial_frame() {
        let data = [&VOICE[..], &VOICE[..7]].concat();
        let mut r = FrameReader::new(&data[..]).unwrap();
        assert_eq!(r.by_ref().count(), 1);
        assert_eq!(r.partial_bytes_dropped(), 7);
    }

    #[test]
    fn itu_reader_packs_bits_msb_first_both_endians() {
        for be in [false, true] {
            let data = itu_frame(SYNC_GOOD, &bits_of(&VOICE), be);
            let r = FrameReader::new(&data[..]).unwrap();
            let want = if be {
                FrameFormat::ItuBe
            } else {
                FrameFormat::ItuLe
            };
            assert_eq!(r.format(), want);
            assert_eq!(all(r)[0].as_ref().unwrap(), &Frame::Voice(VOICE));
        }
    }

    #[test]
    fn itu_reader_reads_sid_untransmitted_and_erased() {
        let sid_bits = bits_of(&[0xAB, 0xCD])[..15].to_vec();
        let data = [
            itu_frame(SYNC_GOOD, &sid_bits, false),
            itu_frame(SYNC_GOOD, &[], false),
            itu_frame(SYNC_ERASED, &bits_of(&VOICE), false),
        ]
        .concat();
        let frames: Vec<_> = all(FrameReader::new(&data[..]).unwrap());
        let frames: Vec<_> = frames.into_iter().map(|f| f.unwrap()).collect();
        let want = [
            Frame::Sid([0xAB, 0xCC]),
            Frame::Untransmitted,
            Frame::Erased,
        ];
        assert_eq!(frames, want);
    }

    #[test]
    fn itu_reader_rejects_bad_bit_word() {
        let mut data = itu_frame(SYNC_GOOD, &bits_of(&VOICE), false);
        data[4 + 2 * 5] = 0x42; // sixth bit word of the first frame
        let frames = all(FrameReader::new(&data[..]).unwrap());
        assert!(matches!(
            frames[..],
            [Err(G729Error::BadBitWord {
                offset: 14,
                word: 0x0042
            })]
        ));
    }

    #[test]
    fn itu_reader_rejects_lost_sync() {
        let mut data = itu_frame(SYNC_GOOD, &bits_of(&VOICE), false);
        data.extend_from_slice(&[0x00, 0x6B, 80, 0]);
        let frames = all(FrameReader::new(&data[..]).unwrap());
        assert!(matches!(
            frames[1],
            Err(G729Error::BadSync { offset: 164, .. })
        ));
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn itu_reader_rejects_bad_length() {
        let mut data = itu_frame(SYNC_GOOD, &bits_of(&VOICE), false);
        data.extend_from_slice(&[0x21, 0x6B, 81, 0]);
        let frames = all(FrameReader::new(&data[..]).unwrap());
        assert!(matches!(
            frames[1],
            Err(G729Error::BadLength { bits: 81, .. })
        ));
    }

    #[test]
    fn itu_reader_drops_partial_frame() {
        let mut data = itu_frame(SYNC_GOOD, &bits_of(&VOICE), false);
        data.extend_from_slice(&data.clone()[..100]);
        let mut r = FrameReader::new(&data[..]).unwrap();
        assert_eq!(r.by_ref().filter(|f| f.is_ok()).count(), 1);
        assert_eq!(r.partial_bytes_dropped(), 100);
    }
}
