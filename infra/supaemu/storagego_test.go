package supaemu

import (
	"io"
	"net/http"
	"strings"
	"testing"

	storage_go "github.com/supabase-community/storage-go"
)

// TestStorageGo drives the emulator with storage-go v0.8.1 itself: every
// call the client makes must be understood and answered in the shape it
// decodes.
func TestStorageGo(t *testing.T) {
	e := newEnv(t, Config{})
	c := storage_go.NewClient(e.url, e.service, nil)

	if _, err := c.CreateBucket("sg", storage_go.BucketOptions{FileSizeLimit: "1MB"}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	if b, err := c.GetBucket("sg"); err != nil || b.Id != "sg" || b.FileSizeLimit == nil || *b.FileSizeLimit != 1_000_000 {
		t.Fatalf("GetBucket = %+v, %v", b, err)
	}
	if bs, err := c.ListBuckets(); err != nil || len(bs) != 2 {
		t.Fatalf("ListBuckets = %+v, %v", bs, err)
	}
	if _, err := c.UpdateBucket("sg", storage_go.BucketOptions{Public: false}); err != nil {
		t.Fatalf("UpdateBucket: %v", err)
	}
	ct := "text/plain"
	if r, err := c.UploadFile("sg", "dir/a.txt", strings.NewReader("hello"), storage_go.FileOptions{ContentType: &ct}); err != nil || r.Key != "sg/dir/a.txt" {
		t.Fatalf("UploadFile = %+v, %v", r, err)
	}
	if _, err := c.UploadFile("sg", "dir/a.txt", strings.NewReader("again")); err == nil || err.Error() != "The resource already exists" {
		t.Fatalf("second UploadFile without upsert = %v, want the duplicate error", err)
	}
	if _, err := c.UpdateFile("sg", "dir/a.txt", strings.NewReader("hello, again")); err != nil {
		t.Fatalf("UpdateFile: %v", err)
	}
	if got, err := c.DownloadFile("sg", "dir/a.txt"); err != nil || string(got) != "hello, again" {
		t.Fatalf("DownloadFile = %q, %v", got, err)
	}
	files, err := c.ListFiles("sg", "dir", storage_go.FileSearchOptions{})
	if err != nil || len(files) != 1 || files[0].Name != "a.txt" || files[0].Id == "" {
		t.Fatalf("ListFiles = %+v, %v", files, err)
	}
	signed, err := c.CreateSignedUrl("sg", "dir/a.txt", 60)
	if err != nil || !strings.HasPrefix(signed.SignedURL, e.url+"/object/sign/sg/dir/a.txt?token=") {
		t.Fatalf("CreateSignedUrl = %+v, %v", signed, err)
	}
	resp, err := http.Get(signed.SignedURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello, again" {
		t.Fatalf("GET signed URL: %d %q", resp.StatusCode, body)
	}
	if _, err := c.MoveFile("sg", "dir/a.txt", "dir/b.txt"); err != nil {
		t.Fatalf("MoveFile: %v", err)
	}
	if _, err := c.DownloadFile("sg", "dir/a.txt"); err == nil || err.Error() != "Object not found" {
		t.Fatalf("DownloadFile after move = %v, want Object not found", err)
	}
	if removed, err := c.RemoveFile("sg", []string{"dir/b.txt", "never"}); err != nil || len(removed) != 1 {
		t.Fatalf("RemoveFile = %+v, %v", removed, err)
	}
	if _, err := c.UploadFile("sg", "x", strings.NewReader("x")); err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if _, err := c.EmptyBucket("sg"); err != nil {
		t.Fatalf("EmptyBucket: %v", err)
	}
	if _, err := c.DeleteBucket("sg"); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}
	if _, err := c.GetBucket("sg"); err == nil || err.Error() != "Bucket not found" {
		t.Fatalf("GetBucket after delete = %v, want Bucket not found", err)
	}
}
