//! A 512 MiB GET streams through the client without buffering: the peak
//! resident set of this test process stays under 64 MiB. Alone in its own
//! test binary so no other test's allocations count.

use byos3::s3::{Addressing, Payload, PutOptions};
use byos3_tests::{pattern, peak_rss_bytes, Garage};
use bytes::Bytes;
use futures_util::StreamExt;

const MIB: u64 = 1024 * 1024;

#[test]
fn get_of_512_mib_keeps_peak_rss_under_64_mib() {
    let garage = Garage::start().unwrap();
    let rt = byos3_tests::runtime();
    rt.block_on(async {
        let client = garage.client(Addressing::Path);
        // Upload 64 parts of 8 MiB, one at a time, from one reused pattern
        // buffer so the upload itself stays small in memory.
        let part = Bytes::from(pattern(8 * MIB as usize, 3));
        let key = "big/512mib";
        let id = client
            .create_multipart_upload(key, &PutOptions::default())
            .await
            .unwrap();
        let mut parts = Vec::new();
        for n in 1..=64 {
            parts.push(
                client
                    .upload_part(key, &id, n, Payload::Bytes(part.clone()))
                    .await
                    .unwrap(),
            );
        }
        client.complete_multipart_upload(key, &id, &parts).await.unwrap();
        drop(part);
        let before = peak_rss_bytes();

        let out = client.get_object(key, None, None).await.unwrap();
        assert_eq!(out.meta.size, 512 * MIB);
        let expected = pattern(8 * MIB as usize, 3);
        let mut body = out.body;
        let mut offset: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            // Check content as it streams, without keeping it.
            let mut pos = (offset % (8 * MIB)) as usize;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = rest.len().min(expected.len() - pos);
                assert!(
                    rest[..n] == expected[pos..pos + n],
                    "content differs near byte {offset}"
                );
                rest = &rest[n..];
                pos = (pos + n) % expected.len();
            }
            offset += chunk.len() as u64;
        }
        assert_eq!(offset, 512 * MIB);
        let peak = peak_rss_bytes();
        println!("peak RSS before GET {} MiB, after {} MiB", before / MIB, peak / MIB);
        assert!(peak < 64 * MIB, "peak RSS {} MiB is not under 64 MiB", peak / MIB);
    });
}
