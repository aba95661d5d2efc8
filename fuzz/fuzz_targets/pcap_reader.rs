//! Any byte string given to the pcap reader yields records or an error, never a panic, and the reader
//! stops after the first error. Whatever it reads, the writer writes back to a file that reads the same.
#![no_main]

use dataplane::pcap::{Reader, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = Reader::new(data) else { return };
    let precision = reader.header().precision;
    let mut records = Vec::new();
    for record in reader {
        match record {
            Ok(record) => records.push(record),
            Err(_) => break,
        }
    }
    let mut writer = Writer::new(Vec::new(), precision).expect("writing to a Vec cannot fail");
    let mut written = Vec::new();
    for record in &records {
        // Frames over the writer's snap length or past year 2106 are refused, not written.
        if writer.write_packet(record.ts_nanos, record.data).is_ok() {
            written.push(record);
        }
    }
    let bytes = writer.into_inner().expect("writing to a Vec cannot fail");
    let again: Vec<_> =
        Reader::new(&bytes).expect("our own header reads").collect::<Result<_, _>>().expect("our own records read");
    assert_eq!(again.len(), written.len());
    for (a, b) in again.iter().zip(written) {
        assert_eq!((a.ts_nanos, a.data), (b.ts_nanos, b.data));
    }
});
