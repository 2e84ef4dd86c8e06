mod common;
use common::TestServer;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_big_bodies() {
    let server = TestServer::spawn();
    server.create_tenant("acme").await;
    let key = server.create_key("acme", &["ingest", "read"]).await;
    for mb in [65usize, 70, 70, 70, 79, 81, 81, 81, 100, 100, 100, 200] {
        let body = vec![b' '; mb * 1024 * 1024];
        let t = Instant::now();
        let r = server.http.post(server.url("/v1/events")).bearer_auth(&key).header("content-type", "application/json").body(body).send().await;
        match r {
            Ok(r) => { let s = r.status(); let txt = r.text().await; println!("{mb} MiB CL: {s} {:?} in {:?}", txt.map(|t| t.chars().take(150).collect::<String>()), t.elapsed()); }
            Err(e) => println!("{mb} MiB CL: error {e:?} in {:?}", t.elapsed()),
        }
        // chunked
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..mb).map(|_| Ok(vec![b' '; 1024*1024])).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let t = Instant::now();
        let r = server.http.post(server.url("/v1/events")).bearer_auth(&key).header("content-type", "application/json").body(body).send().await;
        match r {
            Ok(r) => { let s = r.status(); let txt = r.text().await; println!("{mb} MiB chunked: {s} {:?} in {:?}", txt.map(|t| t.chars().take(150).collect::<String>()), t.elapsed()); }
            Err(e) => println!("{mb} MiB chunked: error {e:?} in {:?}", t.elapsed()),
        }
    }
    assert!(server.healthy().await);
}
