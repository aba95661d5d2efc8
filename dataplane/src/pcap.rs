//! Classic libpcap capture files: the replay tool's input and output, and the benches' packet source.
//!
//! Layer: none (a file format, not a wire format); used off the fast path only.
//!
//! Format (draft-ietf-opsawg-pcap, "PCAP Capture File Format", §4 file header, §5 packet record):
//! a 24-byte file header — magic, major and minor version, two reserved words, snap length, link type —
//! followed by records of a 16-byte header — seconds, sub-seconds, captured length, original length —
//! and the captured bytes.
//!
//! Contract:
//! - [`Reader`] takes a file in either byte order, with microsecond (`0xA1B2C3D4`) or nanosecond
//!   (`0xA1B23C4D`) timestamps, and link type `LINKTYPE_ETHERNET` only. It is zero-copy over a byte
//!   slice and never panics: anything malformed is a [`PcapError`] naming the byte offset, after which
//!   the reader yields nothing more.
//! - [`Writer`] writes little-endian files with the precision asked for, link type Ethernet.
//! - Timestamps are nanoseconds since the Unix epoch (`u64`) in both directions.

use std::io::{self, Write};
use std::path::Path;

/// `LINKTYPE_ETHERNET`: frames start with the Ethernet header (draft-ietf-opsawg-pcap-linktype).
pub const LINKTYPE_ETHERNET: u16 = 1;

/// Length of the file header (§4).
const FILE_HEADER_LEN: usize = 24;
/// Length of a packet record header (§5).
const RECORD_HEADER_LEN: usize = 16;
/// The snap length the writer declares: no frame this data plane handles is longer.
const WRITER_SNAPLEN: u32 = 65_535;

/// Magic number of a file with microsecond timestamps (§4), as read in the file's own byte order.
const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
/// Magic number of a file with nanosecond timestamps (§4).
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;

/// Unit of the record header's sub-second field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Sub-second field counts microseconds (magic `0xA1B2C3D4`).
    Micros,
    /// Sub-second field counts nanoseconds (magic `0xA1B23C4D`).
    Nanos,
}

impl Precision {
    /// Nanoseconds per unit of the sub-second field.
    const fn nanos_per_unit(self) -> u64 {
        match self {
            Precision::Micros => 1_000,
            Precision::Nanos => 1,
        }
    }

    const fn magic(self) -> u32 {
        match self {
            Precision::Micros => MAGIC_MICROS,
            Precision::Nanos => MAGIC_NANOS,
        }
    }
}

/// What was wrong with a capture file, and where.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file is shorter than its 24-byte header.
    #[error("pcap file header truncated: needed 24 bytes, got {got}")]
    TruncatedFileHeader { got: usize },
    /// The first word is none of the four magic numbers (two precisions, two byte orders).
    #[error("pcap magic number 0x{magic:08x} at offset 0 is not a classic pcap magic")]
    BadMagic { magic: u32 },
    /// The link type is not Ethernet.
    #[error("pcap link type {linktype} at offset 20 is not LINKTYPE_ETHERNET (1)")]
    UnsupportedLinkType { linktype: u16 },
    /// A record header runs past the end of the file.
    #[error("pcap record header at offset {offset} truncated: needed 16 bytes, got {got}")]
    TruncatedRecordHeader { offset: usize, got: usize },
    /// A record's captured bytes run past the end of the file.
    #[error("pcap record at offset {offset} truncated: captured length {caplen}, but {got} bytes remain")]
    TruncatedRecordData { offset: usize, caplen: u32, got: usize },
    /// The writer was given a frame longer than the snap length it declared.
    #[error("pcap writer: frame of {len} bytes exceeds the snap length {WRITER_SNAPLEN}")]
    FrameTooLong { len: usize },
    /// The writer was given a timestamp past the 32-bit seconds field (year 2106).
    #[error("pcap writer: timestamp {ts_nanos} ns does not fit the 32-bit seconds field")]
    TimestampOutOfRange { ts_nanos: u64 },
    /// Reading or writing the file failed.
    #[error("pcap file {path}: {source}")]
    Io { path: String, source: io::Error },
    /// Writing to the underlying writer failed.
    #[error("pcap write: {0}")]
    Write(#[from] io::Error),
}

/// The file header fields a user of the capture needs (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Major and minor version (2.4 for every writer in use).
    pub version: (u16, u16),
    /// Maximum captured length per record that the writer promised.
    pub snaplen: u32,
    /// Timestamp unit.
    pub precision: Precision,
    /// True when the file's fields are big-endian.
    pub big_endian: bool,
}

/// One captured frame, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Length of the frame on the wire (may exceed `data.len()` if the capture was truncated).
    pub orig_len: u32,
    /// The captured bytes, starting with the Ethernet header.
    pub data: &'a [u8],
}

/// One captured frame, owned (what [`read_file`] returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// The captured bytes, starting with the Ethernet header.
    pub data: Vec<u8>,
}

/// Zero-copy reader over a whole capture file held in memory; iterate it for the records.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    header: FileHeader,
    data: &'a [u8],
    /// Offset of the next record header; `None` once the end or an error was reached.
    offset: Option<usize>,
}

/// Reads the `u32` at `offset` in the file's byte order; `None` past the end.
fn u32_at(data: &[u8], offset: usize, big_endian: bool) -> Option<u32> {
    let bytes: [u8; 4] = data.get(offset..offset + 4)?.try_into().ok()?;
    Some(if big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
}

fn u16_at(data: &[u8], offset: usize, big_endian: bool) -> Option<u16> {
    let bytes: [u8; 2] = data.get(offset..offset + 2)?.try_into().ok()?;
    Some(if big_endian { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
}

impl<'a> Reader<'a> {
    /// Checks the file header (§4) and positions the reader at the first record.
    pub fn new(data: &'a [u8]) -> Result<Self, PcapError> {
        let Some(head) = data.get(..FILE_HEADER_LEN) else {
            return Err(PcapError::TruncatedFileHeader { got: data.len() });
        };
        // §4: the magic tells both the byte order and the timestamp precision.
        let magic_bytes = [head[0], head[1], head[2], head[3]];
        let magic_le = u32::from_le_bytes(magic_bytes);
        let magic_be = u32::from_be_bytes(magic_bytes);
        let (precision, big_endian) = match (magic_le, magic_be) {
            (MAGIC_MICROS, _) => (Precision::Micros, false),
            (MAGIC_NANOS, _) => (Precision::Nanos, false),
            (_, MAGIC_MICROS) => (Precision::Micros, true),
            (_, MAGIC_NANOS) => (Precision::Nanos, true),
            _ => return Err(PcapError::BadMagic { magic: magic_be }),
        };
        let field = |offset| u32_at(head, offset, big_endian).unwrap_or_default();
        let version =
            (u16_at(head, 4, big_endian).unwrap_or_default(), u16_at(head, 6, big_endian).unwrap_or_default());
        let snaplen = field(16);
        // §4: the LinkType is the low 16 bits; the top bits may carry the FCS length, which a
        // LINKTYPE_ETHERNET capture of ours never has but which does not change the frame start.
        let linktype = (field(20) & 0xFFFF) as u16;
        if linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::UnsupportedLinkType { linktype });
        }
        Ok(Reader {
            header: FileHeader { version, snaplen, precision, big_endian },
            data,
            offset: Some(FILE_HEADER_LEN),
        })
    }

    /// The file header.
    pub fn header(&self) -> FileHeader {
        self.header
    }

    fn next_record(&mut self, offset: usize) -> Result<Option<(Record<'a>, usize)>, PcapError> {
        let rest = self.data.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecordHeader { offset, got: rest.len() });
        }
        let be = self.header.big_endian;
        let field = |at| u32_at(rest, at, be).unwrap_or_default();
        // §5: seconds, sub-seconds (µs or ns per the magic), captured length, original length.
        let secs = u64::from(field(0));
        let frac = u64::from(field(4));
        let caplen = field(8);
        let orig_len = field(12);
        // Cannot overflow: secs < 2^32 so secs * 1e9 < 2^62, and frac * 1000 < 2^42.
        let ts_nanos = secs * 1_000_000_000 + frac * self.header.precision.nanos_per_unit();
        let body = &rest[RECORD_HEADER_LEN..];
        let Some(data) = usize::try_from(caplen).ok().and_then(|n| body.get(..n)) else {
            return Err(PcapError::TruncatedRecordData { offset, caplen, got: body.len() });
        };
        let next = offset + RECORD_HEADER_LEN + data.len();
        Ok(Some((Record { ts_nanos, orig_len, data }, next)))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset.take()?;
        match self.next_record(offset) {
            Ok(Some((record, next))) => {
                self.offset = Some(next);
                Some(Ok(record))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl std::iter::FusedIterator for Reader<'_> {}

/// Reads a whole capture file into owned records.
pub fn read_file(path: &Path) -> Result<(FileHeader, Vec<OwnedRecord>), PcapError> {
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io { path: path.display().to_string(), source })?;
    let reader = Reader::new(&bytes)?;
    let header = reader.header();
    let records = reader
        .map(|r| r.map(|r| OwnedRecord { ts_nanos: r.ts_nanos, orig_len: r.orig_len, data: r.data.to_vec() }))
        .collect::<Result<_, _>>()?;
    Ok((header, records))
}

/// Writes a little-endian, link-type-Ethernet capture (§4, §5).
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    precision: Precision,
}

impl<W: Write> Writer<W> {
    /// Writes the file header and returns a writer for the records.
    pub fn new(mut out: W, precision: Precision) -> Result<Self, PcapError> {
        let mut head = [0u8; FILE_HEADER_LEN];
        head[0..4].copy_from_slice(&precision.magic().to_le_bytes());
        head[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4 (§4)
        head[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: the two reserved words, zero (§4).
        head[16..20].copy_from_slice(&WRITER_SNAPLEN.to_le_bytes());
        head[20..24].copy_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
        out.write_all(&head)?;
        Ok(Writer { out, precision })
    }

    /// Appends one frame captured whole at `ts_nanos` (nanoseconds since the Unix epoch).
    pub fn write_packet(&mut self, ts_nanos: u64, frame: &[u8]) -> Result<(), PcapError> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&len| len <= WRITER_SNAPLEN)
            .ok_or(PcapError::FrameTooLong { len: frame.len() })?;
        let secs = u32::try_from(ts_nanos / 1_000_000_000).map_err(|_| PcapError::TimestampOutOfRange { ts_nanos })?;
        // < 1e9, so it fits in u32.
        let frac = ((ts_nanos % 1_000_000_000) / self.precision.nanos_per_unit()) as u32;
        let mut head = [0u8; RECORD_HEADER_LEN];
        head[0..4].copy_from_slice(&secs.to_le_bytes());
        head[4..8].copy_from_slice(&frac.to_le_bytes());
        head[8..12].copy_from_slice(&len.to_le_bytes());
        head[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(frame)?;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Creates `path` and writes `records` to it as a microsecond-precision capture.
pub fn write_file<'r>(path: &Path, records: impl IntoIterator<Item = (u64, &'r [u8])>) -> Result<(), PcapError> {
    let io_err = |source| PcapError::Io { path: path.display().to_string(), source };
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut writer = Writer::new(io::BufWriter::new(file), Precision::Micros)?;
    for (ts_nanos, frame) in records {
        writer.write_packet(ts_nanos, frame)?;
    }
    writer.into_inner()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    // Made by Scapy 2.8 (see dataplane/tests/data/README.md):
    // Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01")/IP(src="10.1.0.5", dst="10.8.0.9",
    //   ttl=64, id=1)/ICMP(id=7, seq=1)/b"ping"
    const FRAME1: &str = "02000000000102000000000a08004500002000010000400166c60a0100050a08000908\
                          0019270007000170696e67";
    // Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:fe")/IP(src="192.0.2.1",
    //   dst="198.51.100.12", id=2)/GRE(key_present=1, key=100)/IP(src="10.8.0.9", dst="10.1.0.5",
    //   id=3)/UDP(sport=1234, dport=5678)/(b"x"*10)
    const FRAME2: &str = "0200000000fe02000000000108004500004200020000402f8e4ac0000201c633640c20\
                          000800000000644500002600030000401166ae0a0800090a01000504d2162e00127659\
                          78787878787878787878";

    const SCAPY_USEC_LE: &[u8] = include_bytes!("../tests/data/scapy-usec-le.pcap");
    const SCAPY_NSEC_BE: &[u8] = include_bytes!("../tests/data/scapy-nsec-be.pcap");

    #[test]
    fn reads_scapy_microsecond_little_endian() {
        let reader = Reader::new(SCAPY_USEC_LE).unwrap();
        assert_eq!(
            reader.header(),
            FileHeader { version: (2, 4), snaplen: 65535, precision: Precision::Micros, big_endian: false }
        );
        let records: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 2);
        // Scapy wrote pkt.time = 1700000000.123456 and 1700000001.000789.
        assert_eq!(records[0].ts_nanos, 1_700_000_000_123_456_000);
        assert_eq!(records[1].ts_nanos, 1_700_000_001_000_789_000);
        assert_eq!(records[0].data, unhex(FRAME1));
        assert_eq!(records[1].data, unhex(FRAME2));
        assert_eq!(records[0].orig_len as usize, records[0].data.len());
    }

    #[test]
    fn reads_scapy_nanosecond_big_endian() {
        let reader = Reader::new(SCAPY_NSEC_BE).unwrap();
        assert_eq!(reader.header().precision, Precision::Nanos);
        assert!(reader.header().big_endian);
        let records: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        // Scapy wrote pkt.time = 1700000000.123456789 and 1700000001.000000001.
        assert_eq!(
            records.iter().map(|r| r.ts_nanos).collect::<Vec<_>>(),
            [1_700_000_000_123_456_789, 1_700_000_001_000_000_001]
        );
        assert_eq!(records[0].data, unhex(FRAME1));
        assert_eq!(records[1].data, unhex(FRAME2));
    }

    #[test]
    fn writer_reproduces_scapy_file_byte_for_byte() {
        // Scapy writes the same header fields as we do (2.4, snaplen 65535, LE, µs).
        let mut writer = Writer::new(Vec::new(), Precision::Micros).unwrap();
        writer.write_packet(1_700_000_000_123_456_000, &unhex(FRAME1)).unwrap();
        writer.write_packet(1_700_000_001_000_789_000, &unhex(FRAME2)).unwrap();
        assert_eq!(writer.into_inner().unwrap(), SCAPY_USEC_LE);
    }

    #[test]
    fn every_truncation_yields_the_whole_records_then_an_error_at_the_cut_record() {
        // Record boundaries in the Scapy file: header 24, then 16 + 46, then 16 + 80.
        let boundaries = [24usize, 86, 182];
        for len in 0..SCAPY_USEC_LE.len() {
            let cut = &SCAPY_USEC_LE[..len];
            let reader = match Reader::new(cut) {
                Err(PcapError::TruncatedFileHeader { got }) if len < 24 => {
                    assert_eq!(got, len);
                    continue;
                }
                other => other.unwrap_or_else(|e| panic!("length {len}: {e}")),
            };
            let results: Vec<_> = reader.collect();
            let whole = boundaries.iter().filter(|&&b| b <= len).count() - 1;
            assert!(results[..whole].iter().all(Result::is_ok), "length {len}");
            if boundaries.contains(&len) {
                assert_eq!(results.len(), whole, "length {len}");
            } else {
                assert_eq!(results.len(), whole + 1, "length {len}");
                let offset = match results[whole].as_ref().unwrap_err() {
                    PcapError::TruncatedRecordHeader { offset, .. } | PcapError::TruncatedRecordData { offset, .. } => {
                        *offset
                    }
                    other => panic!("length {len}: unexpected error {other}"),
                };
                assert_eq!(offset, boundaries[whole], "length {len}");
            }
        }
    }

    #[test]
    fn rejects_bad_magic_and_link_type() {
        let mut bad = SCAPY_USEC_LE.to_vec();
        bad[0] ^= 0xFF;
        assert!(matches!(Reader::new(&bad), Err(PcapError::BadMagic { .. })));
        let mut raw_ip = SCAPY_USEC_LE.to_vec();
        raw_ip[20] = 101; // LINKTYPE_RAW
        let err = Reader::new(&raw_ip).unwrap_err();
        assert!(matches!(err, PcapError::UnsupportedLinkType { linktype: 101 }));
        assert_eq!(err.to_string(), "pcap link type 101 at offset 20 is not LINKTYPE_ETHERNET (1)");
    }

    #[test]
    fn huge_caplen_is_reported_with_its_offset() {
        let mut bad = SCAPY_USEC_LE.to_vec();
        bad[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = Reader::new(&bad).unwrap().next().unwrap().unwrap_err();
        assert!(matches!(err, PcapError::TruncatedRecordData { offset: 24, caplen: u32::MAX, got: 142 }));
    }

    #[test]
    fn writer_refuses_what_the_format_cannot_hold() {
        let mut writer = Writer::new(Vec::new(), Precision::Nanos).unwrap();
        let too_long = vec![0u8; 65_536];
        assert!(matches!(writer.write_packet(0, &too_long), Err(PcapError::FrameTooLong { len: 65_536 })));
        let late = (u64::from(u32::MAX) + 1) * 1_000_000_000;
        assert!(matches!(writer.write_packet(late, &[0; 14]), Err(PcapError::TimestampOutOfRange { .. })));
    }

    #[test]
    fn file_round_trip() {
        let path = std::env::temp_dir().join(format!("dataplane-pcap-test-{}.pcap", std::process::id()));
        let frames = [unhex(FRAME1), unhex(FRAME2)];
        write_file(&path, [(5_000, frames[0].as_slice()), (7_000_000_001_000, frames[1].as_slice())]).unwrap();
        let (header, records) = read_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(header.precision, Precision::Micros);
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].ts_nanos, &records[0].data), (5_000, &frames[0]));
        // Microsecond precision drops the last three digits.
        assert_eq!((records[1].ts_nanos, &records[1].data), (7_000_000_001_000, &frames[1]));
        let missing = read_file(&path).unwrap_err().to_string();
        assert!(missing.starts_with(&format!("pcap file {}: ", path.display())), "{missing}");
    }

    proptest! {
        #[test]
        fn read_of_write_is_identity(
            nanos in any::<bool>(),
            packets in proptest::collection::vec(
                (0u64..=u64::from(u32::MAX) * 1_000_000_000, proptest::collection::vec(any::<u8>(), 0..200)),
                0..8,
            ),
        ) {
            let precision = if nanos { Precision::Nanos } else { Precision::Micros };
            let mut writer = Writer::new(Vec::new(), precision).unwrap();
            for (ts, data) in &packets {
                writer.write_packet(*ts, data).unwrap();
            }
            let bytes = writer.into_inner().unwrap();
            let reader = Reader::new(&bytes).unwrap();
            prop_assert_eq!(reader.header().precision, precision);
            let records: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(records.len(), packets.len());
            for (record, (ts, data)) in records.iter().zip(&packets) {
                let unit = precision.nanos_per_unit();
                prop_assert_eq!(record.ts_nanos, ts / unit * unit);
                prop_assert_eq!(record.data, data.as_slice());
                prop_assert_eq!(record.orig_len as usize, data.len());
            }
        }

        #[test]
        fn arbitrary_records_never_panic(
            magic in prop_oneof![Just(SCAPY_USEC_LE), Just(SCAPY_NSEC_BE)],
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            // A valid file header (either byte order) followed by junk records.
            let mut bytes = magic[..FILE_HEADER_LEN].to_vec();
            bytes.extend_from_slice(&tail);
            let results: Vec<_> = Reader::new(&bytes).unwrap().collect();
            // Only the last item may be an error, and the iterator stops after it.
            prop_assert!(results.iter().rev().skip(1).all(Result::is_ok));
        }
    }
}
