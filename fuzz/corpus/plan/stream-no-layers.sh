#!/bin/stowage stream
{"mtime":1,"images":[{"repoTags":["fuzz/plan:1"],"layers":[],"config":"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"}]}
