package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"loramix/engine/tokenizer"
)

// `loramix tokenize` turns stdin lines into JSON id lines, or with --decode
// JSON id lines back into text.
func init() {
	register("tokenize", "tokenize stdin lines to {\"ids\": [...]} lines: tokenize [--tokenizer FILE] [--no-bos] [--decode]",
		func(args []string) error { return runTokenize(args, os.Stdin, os.Stdout) })
}

// defaultTokenizer is where the tokenizer is looked for without --tokenizer.
func defaultTokenizer() string {
	if p := os.Getenv("LORAMIX_TOKENIZER"); p != "" {
		return p
	}
	return ".cache/tokenizer/tokenizer.json"
}

// runTokenize reads in one line at a time and writes one JSON line per input
// line to out: {"ids": [...]} (BOS first unless --no-bos), or with --decode
// {"text": "..."} for each input line holding {"ids": [...]} or a bare array.
// A trailing "\r\n" or "\n" ends a line and is not part of its text.
func runTokenize(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	path := fs.String("tokenizer", "", "tokenizer.json (default: $LORAMIX_TOKENIZER, else .cache/tokenizer/tokenizer.json)")
	noBOS := fs.Bool("no-bos", false, "leave out the BOS id")
	decode := fs.Bool("decode", false, "read JSON id lines and write {\"text\": ...} lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (input comes from stdin)", fs.Args())
	}
	if *path == "" {
		*path = defaultTokenizer()
	}
	tok, err := tokenizer.Load(*path)
	if err != nil {
		return err
	}

	r := bufio.NewReaderSize(in, 1<<16)
	w := bufio.NewWriterSize(out, 1<<16)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("stdin: %w", err)
		}
		if line == "" && err != nil {
			break
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if *decode {
			ids, perr := parseIDs(line)
			if perr != nil {
				return fmt.Errorf("stdin line %d: %w", n, perr)
			}
			if err := enc.Encode(struct {
				Text string `json:"text"`
			}{tok.Decode(ids)}); err != nil {
				return err
			}
		} else {
			ids := tok.Encode(line, !*noBOS)
			if err := enc.Encode(struct {
				IDs []int `json:"ids"`
			}{ids}); err != nil {
				return err
			}
		}
		// Flush when no more input is waiting, so that a pipe gets its
		// answer line by line and a file is still written in large blocks.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if err != nil {
			break
		}
	}
	return w.Flush()
}

// parseIDs reads {"ids": [...]} or a bare [...] of token ids.
func parseIDs(line string) ([]int, error) {
	b := bytes.TrimSpace([]byte(line))
	var ids []int
	switch {
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, fmt.Errorf("want a JSON array of ids: %w", err)
		}
	case len(b) > 0 && b[0] == '{':
		var obj struct {
			IDs *[]int `json:"ids"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("want {\"ids\": [...]}: %w", err)
		}
		if obj.IDs == nil {
			return nil, errors.New(`want {"ids": [...]}: no "ids" field`)
		}
		ids = *obj.IDs
	default:
		return nil, errors.New(`want {"ids": [...]} or a JSON array of ids`)
	}
	return ids, nil
}
