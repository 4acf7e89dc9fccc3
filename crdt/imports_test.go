package crdt

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// crdt is pure: the same records and the same instant give the same state and
// view on every node. This test fails if the package (tests aside) reaches
// for the network, the file system, randomness, goroutines or the clock.
func TestPackageStaysPure(t *testing.T) {
	forbidden := map[string]string{
		"net": "network", "net/http": "network", "os": "files", "os/exec": "processes",
		"io/ioutil": "files", "syscall": "system calls", "math/rand": "randomness",
		"math/rand/v2": "randomness", "crypto/rand": "randomness (take an io.Reader)",
		"sync": "concurrency", "log": "logging (return errors)", "log/slog": "logging (return errors)",
	}
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
		"AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		checked++
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbidden[path]; bad {
				t.Errorf("%s imports %s (%s): crdt must stay pure", fset.Position(imp.Pos()), path, why)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && clock[n.Sel.Name] {
					t.Errorf("%s reads the clock (time.%s): take the time as an argument", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.GoStmt:
				t.Errorf("%s starts a goroutine", fset.Position(n.Pos()))
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("only %d files checked; is the test running in the package directory?", checked)
	}
}
