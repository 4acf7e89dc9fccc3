// Command wgprobe prints, as JSON, what the wg package reads of an
// interface, once or (with -watch) at every change. The end-to-end tests
// run it inside test-bed namespaces.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/data-mesher/data-mesher/wg"
)

func main() {
	name := flag.String("i", "wg0", "interface")
	watch := flag.Bool("watch", false, "print a line at every change")
	flag.Parse()
	enc := json.NewEncoder(os.Stdout)
	if !*watch {
		ifc, err := wg.Read(*name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = enc.Encode(ifc)
		return
	}
	for ev := range wg.Watch(context.Background(), *name, 500*time.Millisecond) {
		if ev.Err != nil {
			_ = enc.Encode(map[string]string{"error": ev.Err.Error()})
			continue
		}
		_ = enc.Encode(ev.Interface)
	}
}
