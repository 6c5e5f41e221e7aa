// Stands in for libFuzzer's main() outside --config=fuzz: feeds every file of the corpus
// directories (or files) named on the command line to LLVMFuzzerTestOneInput once.

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int RunFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 1;
}

int RunPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "corpus_replay: cannot stat %s\n", path.c_str());
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return RunFile(path);
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const int n = RunPath(path + "/" + name);
    if (n < 0) {
      closedir(dir);
      return -1;
    }
    count += n;
  }
  closedir(dir);
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  int total = 0;
  for (int i = 1; i < argc; ++i) {
    const int n = RunPath(argv[i]);
    if (n < 0) return 1;
    total += n;
  }
  LLVMFuzzerTestOneInput(nullptr, 0);
  std::printf("corpus_replay: %d inputs replayed without a crash\n", total);
  return total > 0 ? 0 : 1;
}
