//! The same sequence through rtnetlink on a current-thread tokio runtime.
use futures::stream::TryStreamExt;
use rtnetlink::{new_connection, LinkUnspec, LinkVeth};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let i = std::env::args().nth(1).expect("iteration number");
    let (connection, handle, _) = new_connection().expect("netlink socket");
    tokio::spawn(connection);
    let (host, peer) = (format!("vh{i}"), format!("vc{i}"));
    handle.link().add(LinkVeth::new(&host, &peer).up().build()).execute().await.expect("create veth");
    let link = handle.link().get().match_name(peer).execute().try_next().await.expect("peer").expect("peer");
    let index = link.header.index;
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.expect("up");
    handle.address().add(index, "10.200.0.1".parse().unwrap(), 24).execute().await.expect("address");
    handle.link().del(index).execute().await.expect("delete");
}
