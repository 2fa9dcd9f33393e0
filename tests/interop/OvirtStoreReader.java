// Reads an OVF store the way oVirt's engine does, for tests/interop/test_ovirt_reader.py: the first
// SIZE bytes of the volume (the description's Size), untarred with Apache commons-compress into a map
// keyed by member name, so the last member of a name wins. Prints "name sha256" per entry, sorted by name.
//
// Usage: java -cp commons-compress.jar:. OvirtStoreReader VOLUME SIZE

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;

import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

public final class OvirtStoreReader {
    private OvirtStoreReader() {
    }

    public static void main(String[] args) throws IOException, NoSuchAlgorithmException {
        byte[] store;
        try (InputStream volume = Files.newInputStream(Path.of(args[0]))) {
            store = volume.readNBytes(Integer.parseInt(args[1]));
        }
        Map<String, byte[]> members = new TreeMap<>();
        try (TarArchiveInputStream tar = new TarArchiveInputStream(new ByteArrayInputStream(store))) {
            TarArchiveEntry entry;
            while ((entry = tar.getNextTarEntry()) != null) {
                members.put(entry.getName(), tar.readNBytes((int) entry.getSize()));
            }
        }
        MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
        for (Map.Entry<String, byte[]> member : members.entrySet()) {
            System.out.println(member.getKey() + " " + HexFormat.of().formatHex(sha256.digest(member.getValue())));
        }
    }
}
