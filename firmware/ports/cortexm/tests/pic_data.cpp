// Compiled with -fPIC (CMakeLists.txt): its globals are reached through the GOT, which the
// start-up must copy with .data (mps2-an385.ld) for a position-independent library to work.
int gPicValue = 1234;
const char gPicText[] = "pic";
const char* gPicPointer = gPicText;

int picValue() {
  return gPicValue;
}
const char* picPointer() {
  return gPicPointer;
}
