// A minimal runtime built on the Go libcni (Debian's package), for the cache
// interop tests: it runs add/check/del of a configuration list with the same
// container ID rule and cache as the Go cnitool, so that our cnitool and the Go
// libcni can each finish what the other started.
package main

import (
	"context"
	"crypto/sha512"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: %s add|check|del NETWORK NETNS", os.Args[0]))
	}
	list, err := libcni.LoadConfList(os.Getenv("NETCONFPATH"), os.Args[2])
	if err != nil {
		fail(err)
	}
	netns, err := filepath.Abs(os.Args[3])
	if err != nil {
		fail(err)
	}
	sum := sha512.Sum512([]byte(netns))
	rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("cnitool-%x", sum[:10]), NetNS: netns, IfName: "eth0"}
	cni := libcni.NewCNIConfig(filepath.SplitList(os.Getenv("CNI_PATH")), nil)
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		_ = result.Print()
	case "check":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cni.DelNetworkList(ctx, list, rt)
	default:
		err = fmt.Errorf("unknown verb %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}
