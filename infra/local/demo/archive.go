package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// weddingArchive builds a sample export of one wedding, the kind of thing
// a WedSync business backs up: a contract (a small real PDF), the guest
// list as CSV, a timeline, and a few generated "photos" as PNG, in a
// tar.gz made on the fly.
func weddingArchive(couple string, photos int, seed uint64) ([]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := time.Now().UTC()
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"contract.pdf", contractPDF(couple, now)},
		{"guests.csv", guestList(rng, 120)},
		{"timeline.txt", []byte(timeline(couple))},
	}
	for _, f := range files {
		if err := add(f.name, f.data); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= photos; i++ {
		img, err := photo(rng, 800, 533)
		if err != nil {
			return nil, err
		}
		if err := add(fmt.Sprintf("photos/IMG_%04d.png", i), img); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// contractPDF is a one-page PDF with the contract's text.
func contractPDF(couple string, at time.Time) []byte {
	lines := []string{
		"WEDDING PHOTOGRAPHY AGREEMENT",
		"Client: " + couple,
		"Date of agreement: " + at.Format("2 January 2006"),
		"Coverage: ceremony, reception, 8 hours; two photographers.",
		"Deliverables: 600+ edited images within 8 weeks; online gallery.",
		"Fee: GBP 2,400; deposit GBP 600 paid; balance due 14 days before.",
		"Both parties agree to the terms above.",
	}
	var content strings.Builder
	content.WriteString("BT /F1 12 Tf 72 760 Td 16 TL\n")
	for _, l := range lines {
		l = strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(l)
		fmt.Fprintf(&content, "(%s) Tj T*\n", l)
	}
	content.WriteString("ET\n")
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func guestList(rng *rand.Rand, n int) []byte {
	first := []string{"Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Sophia", "Leo", "Zoë", "José"}
	last := []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "O'Neill", "Müller", "García"}
	meals := []string{"beef", "fish", "vegetarian", "vegan", "child"}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"guest_id", "first_name", "last_name", "email", "rsvp", "meal", "table"})
	for i := 1; i <= n; i++ {
		f, l := first[rng.IntN(len(first))], last[rng.IntN(len(last))]
		email := strings.ToLower(strings.NewReplacer("'", "", "ü", "u", "í", "i", "é", "e", "ë", "e").Replace(f+"."+l)) + "@example.com"
		rsvp := []string{"yes", "yes", "yes", "no", "pending"}[rng.IntN(5)]
		w.Write([]string{fmt.Sprint(i), f, l, email, rsvp, meals[rng.IntN(len(meals))], fmt.Sprint(1 + rng.IntN(15))})
	}
	w.Flush()
	return b.Bytes()
}

func timeline(couple string) string {
	return "Wedding day timeline — " + couple + "\n" +
		"09:00 Bridal preparations\n11:30 Groom's party arrives\n13:00 Ceremony\n" +
		"14:00 Drinks reception and group photos\n16:00 Wedding breakfast\n18:00 Speeches\n" +
		"19:30 First dance\n23:30 Carriages\n"
}

// photo draws a soft gradient with a few circles: a stand-in for a picture,
// compressible like one is not, but real PNG bytes.
func photo(rng *rand.Rand, w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	base := [3]float64{rng.Float64(), rng.Float64(), rng.Float64()}
	type circle struct{ x, y, r float64 }
	cs := make([]circle, 6)
	for i := range cs {
		cs[i] = circle{rng.Float64() * float64(w), rng.Float64() * float64(h), 20 + rng.Float64()*120}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			v := 0.0
			for _, c := range cs {
				if d := math.Hypot(float64(x)-c.x, float64(y)-c.y); d < c.r {
					v += 0.25 * (1 - d/c.r)
				}
			}
			noise := rng.Float64() * 0.04
			img.Set(x, y, color.RGBA{
				R: uint8(255 * clamp(base[0]*0.6+fx*0.3+v+noise)),
				G: uint8(255 * clamp(base[1]*0.6+fy*0.3+v+noise)),
				B: uint8(255 * clamp(base[2]*0.6+(1-fx)*0.3+v+noise)),
				A: 255,
			})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func clamp(v float64) float64 { return math.Max(0, math.Min(1, v)) }
